//! Where an HTTP/1.1 message's body ends: the rules both of our codecs (the server reading
//! clients' requests, the client reading upstreams' responses) apply to `Content-Length`,
//! `Transfer-Encoding` and chunk sizes. No I/O.
//!
//! Strict on purpose, as nginx is: a proxy that reads a length differently from the peer behind
//! or in front of it is the root of request smuggling. A length is ASCII digits and nothing
//! else — no sign (`u64::from_str` takes `+5`), no Unicode spaces (`str::trim` removes NBSP and
//! U+3000), no junk; only the optional whitespace RFC 9110 allows around a field value (space
//! and tab). A chunk size is hex digits, then at most whitespace and an extension.

/// A `Content-Length` value: 1–19 ASCII digits, optionally surrounded by spaces or tabs.
pub fn content_length(value: &[u8]) -> Option<u64> {
    digits(trim_ows(value))
}

/// A `Content-Length` field of a response, which RFC 9110 §8.6 lets be a list of one length
/// repeated (`42, 42`); different lengths are an error (`None`).
pub fn content_length_list(value: &[u8]) -> Option<u64> {
    let mut length = None;
    for part in value.split(|b| *b == b',') {
        let n = content_length(part)?;
        if length.is_some_and(|l| l != n) {
            return None;
        }
        length = Some(n);
    }
    length
}

fn digits(v: &[u8]) -> Option<u64> {
    // 19 digits always fit in a u64; nobody sends a body of 10^19 bytes.
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// Removes leading and trailing optional whitespace (RFC 9110 §5.6.3: space and tab only).
pub fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// What a request's `Transfer-Encoding` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// Exactly `chunked` (any case): the only coding a request may use here.
    Chunked,
    /// Anything else (`gzip, chunked`, `chunked, identity`, `xchunked`, `chunked\v`, an empty
    /// value…): nginx answers 501 and so do we, never guessing where such a body ends.
    Other,
}

pub fn request_coding(value: &[u8]) -> Coding {
    if trim_ows(value).eq_ignore_ascii_case(b"chunked") { Coding::Chunked } else { Coding::Other }
}

/// A chunk-size line or trailer section that is no such thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// The chunk-size line at the start of `buf`: `Ok(Some((line length with its CRLF, size)))`,
/// `Ok(None)` if the line is not complete yet, `Err` if it is malformed. httparse does the
/// parsing (1.10: `parse_chunk_size`); this adds what it lets through, each a place where a peer
/// would see the body end elsewhere: a line without a size (it reads `\r\n`, ` \r\n`, `\t\r\n`
/// and `;x\r\n` as 0, the last chunk; nginx refuses them), a bare LF in an extension (it takes
/// any byte there, `1;a\nb\r\n` is size 1 to it; hyper and nginx refuse it, and a peer that ends
/// the line at that LF reads the chunk's data elsewhere), and an endless extension (a line is at
/// most `MAX_LINE` bytes; it reads a 5,000-byte one). The checks cost nothing measurable next to
/// httparse alone (docs/benchmarks.md, "Maintained crates").
pub fn chunk_size(buf: &[u8]) -> Result<Option<(usize, u64)>, Malformed> {
    const MAX_LINE: usize = 4096;
    match buf.first() {
        None => return Ok(None),
        Some(b) if !b.is_ascii_hexdigit() => return Err(Malformed),
        Some(_) => {}
    }
    match httparse::parse_chunk_size(buf) {
        // httparse ends the line at its CRLF: an LF before that is a bare one.
        Ok(httparse::Status::Complete((len, _))) if buf[..len - 2].contains(&b'\n') => Err(Malformed),
        Ok(httparse::Status::Complete((len, size))) if len <= MAX_LINE => Ok(Some((len, size))),
        Ok(httparse::Status::Partial) if buf.contains(&b'\n') => Err(Malformed),
        Ok(httparse::Status::Partial) if buf.len() <= MAX_LINE => Ok(None),
        _ => Err(Malformed),
    }
}

/// Trailer fields take at most this many bytes (hyper's limit).
pub const MAX_TRAILERS: usize = 16 * 1024;

/// The trailer section at the start of `buf` (what follows the last chunk, through the empty
/// line that ends it): `Ok(Some(its length))`, `Ok(None)` if it is not complete yet, `Err` if it
/// is malformed. Its fields are dropped, but they must be fields, as in a head and as hyper
/// reads them (httparse's rules, at most 100), each line ending in CRLF: a peer that ends lines
/// at a bare LF, or skips a line that is no field, sees the message end elsewhere. How large a
/// section may grow (`MAX_TRAILERS`) is the caller's to check.
pub fn trailers(buf: &[u8]) -> Result<Option<usize>, Malformed> {
    let end =
        if buf.starts_with(b"\r\n") { Some(2) } else { buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4) };
    // The section, or as much of it as has come: checked all the same, so that a bad line is
    // refused without waiting for the rest. (What follows it is the next request's.)
    let section = &buf[..end.unwrap_or(buf.len())];
    if section.iter().enumerate().any(|(i, b)| *b == b'\n' && (i == 0 || section[i - 1] != b'\r')) {
        return Err(Malformed);
    }
    let mut fields = [httparse::EMPTY_HEADER; 100];
    match (end, httparse::parse_headers(section, &mut fields)) {
        (Some(end), Ok(httparse::Status::Complete((len, _)))) if len == end => Ok(Some(end)),
        (None, Ok(httparse::Status::Partial)) => Ok(None),
        _ => Err(Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_ascii_digits_only() {
        let table: &[(&[u8], Option<u64>)] = &[
            (b"0", Some(0)),
            (b"5", Some(5)),
            (b" 5\t", Some(5)),
            (b"0005", Some(5)),
            (b"18446744073709551615", None), // 20 digits
            (b"9999999999999999999", Some(9_999_999_999_999_999_999)),
            (b"+5", None),
            (b"-5", None),
            (b"5 5", None),
            (b"5,5", None),
            (b"0x5", None),
            (b"", None),
            (b" ", None),
            ("\u{a0}5".as_bytes(), None),   // NBSP
            ("5\u{3000}".as_bytes(), None), // ideographic space
            ("\u{85}5".as_bytes(), None),   // NEL
            (b"\x0b5", None),               // vertical tab
            (b"5\r", None),
            ("５".as_bytes(), None), // fullwidth digit
        ];
        for (value, want) in table {
            assert_eq!(content_length(value), *want, "{:?}", String::from_utf8_lossy(value));
        }
    }

    #[test]
    fn a_response_may_repeat_one_length() {
        assert_eq!(content_length_list(b"42, 42"), Some(42));
        assert_eq!(content_length_list(b"42,42 ,42"), Some(42));
        assert_eq!(content_length_list(b"42, 43"), None);
        assert_eq!(content_length_list(b"42,"), None);
        assert_eq!(content_length_list(b"+42"), None);
    }

    #[test]
    fn only_plain_chunked_is_a_request_coding() {
        assert_eq!(request_coding(b"chunked"), Coding::Chunked);
        assert_eq!(request_coding(b" Chunked "), Coding::Chunked);
        for v in
            [&b"gzip, chunked"[..], b"chunked, identity", b"xchunked", b"chunked\x0b", b"", b"identity", b"chunked;"]
        {
            assert_eq!(request_coding(v), Coding::Other, "{:?}", String::from_utf8_lossy(v));
        }
    }

    #[test]
    fn chunk_sizes_are_hex_digits_then_an_extension() {
        assert_eq!(chunk_size(b"a\r\n"), Ok(Some((3, 10))));
        assert_eq!(chunk_size(b"1F;name=value\r\n"), Ok(Some((15, 31))));
        assert_eq!(chunk_size(b"0\r\n"), Ok(Some((3, 0))));
        assert_eq!(chunk_size(b"a"), Ok(None));
        assert_eq!(chunk_size(b""), Ok(None));
        for bad in [
            &b"\r\n"[..],
            b" \r\n",
            b"\t\r\n",
            b";x\r\n",
            b" a\r\n",
            b"+a\r\n",
            b"-1\r\n",
            b"g\r\n",
            b"a\n",
            b"1 1\r\n",
            b"0x1\r\n",
        ] {
            assert_eq!(chunk_size(bad), Err(Malformed), "{:?}", String::from_utf8_lossy(bad));
        }
        // More hex digits than a u64 holds.
        assert_eq!(chunk_size(b"10000000000000000\r\n"), Err(Malformed));
        let mut long = b"1;".to_vec();
        long.extend(std::iter::repeat_n(b'x', 5000));
        assert_eq!(chunk_size(&long), Err(Malformed));
        // A bare LF in an extension, whole or still arriving: hyper ends nothing there, a peer
        // that ends the line at it would read `b\r\n` as data.
        assert_eq!(chunk_size(b"1;a\nb\r\n"), Err(Malformed));
        assert_eq!(chunk_size(b"1;a\nb"), Err(Malformed));
        assert_eq!(chunk_size(b"1;a\x00b\r\n"), Ok(Some((7, 1))));
    }

    #[test]
    fn trailers_are_fields_ending_in_crlf() {
        assert_eq!(trailers(b"\r\n"), Ok(Some(2)));
        assert_eq!(trailers(b"\r\nGET / HTTP/1.1\r\n"), Ok(Some(2)));
        assert_eq!(trailers(b"x-t: 1\r\n\r\n"), Ok(Some(10)));
        assert_eq!(trailers(b"x-t: 1\r\ny: \r\n\r\nnext"), Ok(Some(15)));
        // A request after them may end its lines as it likes.
        assert_eq!(trailers(b"\r\nGET / HTTP/1.1\nhost: a\n\n"), Ok(Some(2)));
        assert_eq!(trailers(b"x-t: 1\r\n\r\nGET / HTTP/1.1\nhost: a\n\n"), Ok(Some(10)));
        for partial in [&b""[..], b"\r", b"x-t: 1", b"x-t: 1\r\n", b"x-t: 1\r\n\r"] {
            assert_eq!(trailers(partial), Ok(None), "{:?}", String::from_utf8_lossy(partial));
        }
        for bad in [
            &b"bad\r\n\r\n"[..],
            b"x-t: a\0b\r\n\r\n",
            b" x: fold\r\n\r\n",
            b"x t: 1\r\n\r\n",
            b": 1\r\n\r\n",
            b"x-t: 1\n\r\n",
            b"x-t: 1\nx-u: 2\r\n\r\n",
            b"\n",
            b"x-t: 1\n",
            b"bad\r\n",
        ] {
            assert_eq!(trailers(bad), Err(Malformed), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
