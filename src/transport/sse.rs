//! Server-Sent Events: an incremental parser (WHATWG rules: `\n`, `\r\n` or `\r` line ends,
//! `data` lines joined with `\n`, comments ignored, an event dispatched on a blank line) and
//! the encoder for events the gateway writes itself. Hand-written because it is ~100 lines and
//! must work on borrowed chunks of a body it otherwise forwards untouched.

use bytes::{Bytes, BytesMut};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Event {
    pub event: Option<String>,
    pub data: String,
    pub id: Option<String>,
    pub retry: Option<u64>,
}

/// Feeds on chunks, yields complete events.
#[derive(Debug, Default)]
pub struct Parser {
    line: Vec<u8>,
    /// The previous chunk ended in `\r`: a `\n` starting the next one belongs to it.
    after_cr: bool,
    current: Event,
    has_data: bool,
    /// A cap on one event's size, so an upstream cannot grow our memory without bound.
    limit: usize,
    overflow: bool,
}

pub const DEFAULT_EVENT_LIMIT: usize = 16 * 1024 * 1024;

impl Parser {
    pub fn new() -> Self {
        Parser { limit: DEFAULT_EVENT_LIMIT, ..Default::default() }
    }

    /// Whether an event grew past the limit (it was dropped).
    pub fn overflowed(&self) -> bool {
        self.overflow
    }

    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<Event>) {
        for &b in chunk {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' => self.end_line(out),
                b'\r' => {
                    self.after_cr = true;
                    self.end_line(out);
                }
                _ => {
                    if self.line.len() + self.current.data.len() < self.limit {
                        self.line.push(b);
                    } else {
                        self.overflow = true;
                    }
                }
            }
        }
    }

    fn end_line(&mut self, out: &mut Vec<Event>) {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            if self.has_data {
                let mut ev = std::mem::take(&mut self.current);
                if ev.data.ends_with('\n') {
                    ev.data.pop();
                }
                out.push(ev);
            } else {
                // An event without data is not dispatched, but its id still counts.
                let id = self.current.id.take();
                self.current = Event { id, ..Default::default() };
            }
            self.has_data = false;
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|&c| c == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (&line[..], &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"data" => {
                self.current.data.push_str(&value);
                self.current.data.push('\n');
                self.has_data = true;
            }
            b"event" => self.current.event = Some(value.into_owned()),
            b"id" if !value.contains('\0') => self.current.id = Some(value.into_owned()),
            b"retry" => self.current.retry = value.parse().ok(),
            _ => {}
        }
    }
}

/// One `message` event carrying a JSON-RPC message.
pub fn encode(data: &[u8], id: Option<&str>) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + 32);
    if let Some(id) = id {
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(b"\n");
    }
    out.extend_from_slice(b"event: message\n");
    // JSON never contains raw newlines in its tokens, but pretty-printed JSON has them between
    // tokens: every line must become its own `data:` line.
    for line in data.split(|&c| c == b'\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
        out.extend_from_slice(b"\n");
    }
    out.extend_from_slice(b"\n");
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<Event> {
        let mut p = Parser::new();
        let mut out = vec![];
        for c in chunks {
            p.feed(c, &mut out);
        }
        out
    }

    #[test]
    fn split_anywhere() {
        let text = b"id: 7\r\nevent: message\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n: comment\n\ndata: x\n\n";
        let whole = parse_all(&[text]);
        assert_eq!(whole.len(), 2);
        assert_eq!(whole[0].id.as_deref(), Some("7"));
        assert_eq!(whole[0].data, "{\"a\":\n1}");
        assert_eq!(whole[1].data, "x");
        for i in 0..text.len() {
            assert_eq!(parse_all(&[&text[..i], &text[i..]]), whole, "split at {i}");
        }
    }

    #[test]
    fn endpoint_event_and_retry() {
        let ev = parse_all(&[b"event: endpoint\ndata: /messages?sessionId=1\nretry: 500\n\n"]);
        assert_eq!(ev[0].event.as_deref(), Some("endpoint"));
        assert_eq!(ev[0].data, "/messages?sessionId=1");
        assert_eq!(ev[0].retry, Some(500));
    }

    #[test]
    fn encode_roundtrip() {
        let ev = parse_all(&[&encode(b"{\n \"a\": 1\n}", Some("3"))]);
        assert_eq!(ev[0].data, "{\n \"a\": 1\n}");
        assert_eq!(ev[0].id.as_deref(), Some("3"));
    }

    #[test]
    fn bounded() {
        let mut p = Parser { limit: 10, ..Parser::new() };
        let mut out = vec![];
        p.feed(b"data: 0123456789abcdef\n\n", &mut out);
        assert!(p.overflowed());
    }
}
