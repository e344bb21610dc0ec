//! The simulator as a Modbus RTU device: on a serial port (or one end of a pty pair), and as an
//! RTU-over-TCP gateway (RTU frames with CRC over each accepted TCP connection).
//!
//! The same [`SimState`] answers as over Modbus TCP, with one difference a bus forces: a unit ID
//! the simulator does not serve stays silent, as an absent device on a bus does (no 0x0B). The
//! framing is plcprobe's own (`proto::modbus::rtu`): requests are found by their length and CRC
//! anywhere in the bytes received, so noise before a request costs only the noise. Serial faults
//! on top of the common ones: `crc=P` (the answer's CRC corrupted), `silence=P` (no answer),
//! `wrong-unit=P` (the answer carries the next unit ID, CRC valid); `delay`, `drop`,
//! `exception` and `garbage` act as over TCP; `disconnect-every` closes an RTU-over-TCP
//! connection.

use std::{
    net::SocketAddr,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use bytes::Bytes;
use tokio::{
    io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _},
    net::TcpListener,
    task::JoinHandle,
};
use tokio_modbus::{ExceptionCode, Request};

use super::SimState;
use crate::{
    capture::writer::{Conn, Recorder},
    proto::modbus::rtu::{adu, encode_exception, encode_response, next_request},
    transport::rtu::{open_serial, LineSettings},
};

/// What to do with one request: the answer frame to send (if any) after a delay, or close.
enum Reply {
    Silent,
    Frame(Vec<u8>, Option<Duration>),
    Close,
}

/// The reply to a request `frame` for a unit this simulator serves.
fn reply(st: &SimState, frame: &[u8], served: u64) -> Reply {
    let unit = frame[0];
    st.requests.fetch_add(1, Ordering::Relaxed);
    let f = st.faults();
    if f.disconnect_every > 0 && served.is_multiple_of(f.disconnect_every) {
        return Reply::Close;
    }
    if st.roll(f.drop) || st.roll(f.silence) {
        return Reply::Silent;
    }
    let pdu = &frame[1..frame.len() - 2];
    let fc = pdu[0];
    let answer = match Request::try_from(Bytes::copy_from_slice(pdu)) {
        Err(_) => Err(ExceptionCode::IllegalDataValue),
        Ok(req) => match f.exception {
            Some((code, p)) if st.roll(p) => Err(ExceptionCode::new(code)),
            _ => st.answer(unit, &req),
        },
    };
    let mut body = match answer {
        Ok(rsp) => encode_response(&rsp),
        Err(e) => encode_exception(fc, u8::from(e)),
    };
    if st.roll(f.garbage) {
        body[0] ^= 0x40; // a function code the request did not use
    }
    let from = if st.roll(f.wrong_unit) {
        unit % 247 + 1
    } else {
        unit
    };
    let mut out = adu(from, &body);
    if st.roll(f.crc) {
        let n = out.len();
        out[n - 1] ^= 0x5A;
    }
    let delay = f
        .delay
        .filter(|(_, p)| *p >= 1.0 || st.roll(*p))
        .map(|(d, _)| d);
    Reply::Frame(out, delay)
}

/// Serve RTU requests arriving on `port` until it closes or fails. `quiet` is how long the line
/// must be silent before bytes that make no request are dropped.
pub(super) async fn serve<P: AsyncRead + AsyncWrite + Unpin>(
    mut port: P,
    st: Arc<SimState>,
    rec: Option<Conn>,
    quiet: Duration,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    let mut served = 0u64;
    loop {
        let read = if buf.is_empty() {
            port.read(&mut chunk).await
        } else {
            let Ok(r) = tokio::time::timeout(quiet, port.read(&mut chunk)).await else {
                buf.clear(); // the line went quiet on bytes that are no request
                continue;
            };
            r
        };
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if let Some(r) = &rec {
            r.client_data(&chunk[..n]);
        }
        buf.extend_from_slice(&chunk[..n]);
        while let Some((skip, len)) = next_request(&buf) {
            let frame: Vec<u8> = buf[skip..skip + len].to_vec();
            buf.drain(..skip + len);
            if frame[0] == 0 || !st.units.contains(&frame[0]) {
                continue; // broadcast, or a unit nobody here answers to: silence
            }
            served += 1;
            match reply(&st, &frame, served) {
                Reply::Silent => {}
                Reply::Close => return,
                Reply::Frame(out, delay) => {
                    if let Some(d) = delay {
                        tokio::time::sleep(d).await;
                    }
                    if port.write_all(&out).await.is_err() || port.flush().await.is_err() {
                        return;
                    }
                    if let Some(r) = &rec {
                        r.server_data(&out);
                    }
                }
            }
        }
        if buf.len() > 1024 {
            buf.drain(..buf.len() - 256);
        }
    }
}

/// Open `path` at `line` and serve it. Errors (no such port, busy, a setting refused) come back
/// before anything is spawned.
pub(super) fn start_serial(
    path: &str,
    line: LineSettings,
    st: &Arc<SimState>,
) -> anyhow::Result<JoinHandle<()>> {
    let port = open_serial(path, line).map_err(|e| anyhow::anyhow!("--rtu {e}"))?;
    let st = Arc::clone(st);
    let quiet = line.timing().t35.max(Duration::from_millis(2));
    Ok(tokio::spawn(async move {
        serve(port, st, None, quiet).await;
    }))
}

/// Listen on `addr` as an RTU-over-TCP gateway; each connection is served on its own.
pub(super) async fn start_tcp(
    addr: SocketAddr,
    st: &Arc<SimState>,
    record: Option<Arc<Recorder>>,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {addr}: {e}; pick another port (or port 0 for any free one)"
        )
    })?;
    let local = listener.local_addr()?;
    let st = Arc::clone(st);
    Ok((
        local,
        tokio::spawn(async move {
            while let Ok((stream, peer)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let rec = record.as_ref().map(|r| r.connection(peer, local));
                let st = Arc::clone(&st);
                tokio::spawn(serve(stream, st, rec, Duration::from_millis(50)));
            }
        }),
    ))
}
