//! OPC UA security settings as text: the `--security POLICY[,MODE]` parser and the names a
//! policy and message mode print as.
//!
//! Pure: async-opcua's types only, no I/O. Parsing never panics; an unknown or mismatched policy
//! or mode is an `Err` with the accepted forms.

use std::str::FromStr;

use opcua::{crypto::SecurityPolicy, types::MessageSecurityMode};

/// Security policy and message mode of a session.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Security {
    /// Policy (None, `Basic256Sha256`, `Aes128_Sha256_RsaOaep`, `Aes256_Sha256_RsaPss`, …).
    pub policy: SecurityPolicy,
    /// None, Sign or `SignAndEncrypt`.
    pub mode: MessageSecurityMode,
}

impl Security {
    /// No security.
    pub const NONE: Security = Security {
        policy: SecurityPolicy::None,
        mode: MessageSecurityMode::None,
    };
}

impl std::fmt::Display for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.policy == SecurityPolicy::None {
            return f.write_str("None");
        }
        write!(f, "{},{}", self.policy.to_str(), mode_name(self.mode))
    }
}

/// `None`, `Sign` or `SignAndEncrypt`.
pub fn mode_name(m: MessageSecurityMode) -> &'static str {
    match m {
        MessageSecurityMode::Sign => "Sign",
        MessageSecurityMode::SignAndEncrypt => "SignAndEncrypt",
        MessageSecurityMode::None => "None",
        MessageSecurityMode::Invalid => "Invalid",
    }
}

impl FromStr for Security {
    type Err = String;

    /// `POLICY[,MODE]`: `None`, `Basic256Sha256,SignAndEncrypt`, `Aes128_Sha256_RsaOaep,Sign`…
    /// A policy without a mode means `SignAndEncrypt` (None for the None policy).
    fn from_str(s: &str) -> Result<Self, String> {
        const HELP: &str = "use POLICY,MODE: None, Basic256Sha256,Sign, Basic256Sha256,SignAndEncrypt, Aes128_Sha256_RsaOaep,SignAndEncrypt or Aes256_Sha256_RsaPss,SignAndEncrypt";
        let (p, m) = s.split_once(',').unwrap_or((s, ""));
        let policy = match p
            .trim()
            .to_ascii_lowercase()
            .replace(['_', '-'], "")
            .as_str()
        {
            "none" => SecurityPolicy::None,
            "basic256sha256" => SecurityPolicy::Basic256Sha256,
            "aes128sha256rsaoaep" => SecurityPolicy::Aes128Sha256RsaOaep,
            "aes256sha256rsapss" => SecurityPolicy::Aes256Sha256RsaPss,
            "basic256" => SecurityPolicy::Basic256,
            "basic128rsa15" => SecurityPolicy::Basic128Rsa15,
            _ => return Err(format!("unknown security policy `{p}`; {HELP}")),
        };
        let mode = match m.trim().to_ascii_lowercase().replace('-', "").as_str() {
            "" if policy == SecurityPolicy::None => MessageSecurityMode::None,
            "" | "signandencrypt" | "sign&encrypt" => MessageSecurityMode::SignAndEncrypt,
            "sign" => MessageSecurityMode::Sign,
            "none" => MessageSecurityMode::None,
            _ => return Err(format!("unknown security mode `{m}`; {HELP}")),
        };
        if (policy == SecurityPolicy::None) != (mode == MessageSecurityMode::None) {
            return Err(format!(
                "`{s}`: the None policy goes with mode None and only with it; {HELP}"
            ));
        }
        Ok(Security { policy, mode })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_forms() {
        assert_eq!("None".parse::<Security>().unwrap(), Security::NONE);
        let s: Security = "Basic256Sha256,SignAndEncrypt".parse().unwrap();
        assert_eq!(
            (s.policy, s.mode),
            (
                SecurityPolicy::Basic256Sha256,
                MessageSecurityMode::SignAndEncrypt
            )
        );
        let s: Security = "aes128_sha256_rsaoaep,sign".parse().unwrap();
        assert_eq!(
            (s.policy, s.mode),
            (
                SecurityPolicy::Aes128Sha256RsaOaep,
                MessageSecurityMode::Sign
            )
        );
        let s: Security = "Aes256_Sha256_RsaPss".parse().unwrap();
        assert_eq!(s.mode, MessageSecurityMode::SignAndEncrypt);
        assert_eq!(s.to_string(), "Aes256-Sha256-RsaPss,SignAndEncrypt");
        assert!("None,Sign".parse::<Security>().is_err());
        assert!("Basic256Sha256,None".parse::<Security>().is_err());
        assert!("Rot13".parse::<Security>().is_err());
    }
}
