//! A TOML file as profiles and check plans read it: its errors name the file, the line and the
//! key, so a technician can fix the file rather than guess.

use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |p| before.len() - p - 1)
        + 1;
    (line, col)
}

/// The text of a TOML file and the name its messages give it (its path).
pub(crate) struct TomlText<'a> {
    /// Name in messages.
    pub source: &'a str,
    /// The whole text.
    pub text: &'a str,
}

impl TomlText<'_> {
    /// The text as `T`; a syntax error, an unknown key or a value of the wrong type names the
    /// line and column.
    pub fn parse<T: DeserializeOwned>(&self) -> anyhow::Result<T> {
        toml::from_str(self.text).map_err(|e| {
            let (line, col) = e.span().map_or((0, 0), |s| line_col(self.text, s.start));
            anyhow::anyhow!("{}:{line}:{col}: {}", self.source, e.message().trim_end())
        })
    }

    /// The line a byte offset is on.
    pub fn line(&self, offset: usize) -> usize {
        line_col(self.text, offset).0
    }

    /// A bad value: where it is, its key and what is wrong.
    pub fn err(&self, span: Range<usize>, key: &str, msg: impl std::fmt::Display) -> anyhow::Error {
        let (line, col) = line_col(self.text, span.start);
        anyhow::anyhow!("{}:{line}:{col}: key `{key}`: {msg}", self.source)
    }

    /// The trimmed `name` (under `key`) of an entry of a list (`[[device]]`, `[[point]]`): not
    /// empty, and not the name of an `earlier` entry (name, line); `taken` says by what, as in
    /// "`a` is already {taken} on line 3".
    pub fn unique_name<'e>(
        &self,
        name: &Spanned<String>,
        key: &str,
        mut earlier: impl Iterator<Item = (&'e str, usize)>,
        taken: &str,
    ) -> anyhow::Result<String> {
        let text = name.get_ref().trim().to_string();
        if text.is_empty() {
            return Err(self.err(name.span(), key, "must not be empty"));
        }
        if let Some((_, line)) = earlier.find(|(n, _)| *n == text) {
            return Err(self.err(
                name.span(),
                key,
                format!("`{text}` is already {taken} on line {line}"),
            ));
        }
        Ok(text)
    }
}
