//! The grammar the differential test's messages come from: requests and responses, well
//! formed and perturbed the ways request smuggling is made of.

use proptest::prelude::*;
use std::time::Duration;

/// Cases per property: enough that a codec loosened in one of the ways the grammar reaches (a
/// sign taken in a length, a bare LF in a chunk extension, a coding padded with NBSP) fails at
/// this count, few enough for a debug build to run all three in well under a second.
pub(super) const CASES: u32 = 512;
/// A case that takes longer than this hangs, which is a failure of its own.
pub(super) const HANG: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// The messages.

/// A message as generated, kept in parts so that a failing one shrinks to the part that matters;
/// shown as its bytes.
#[derive(Clone)]
pub(super) struct Message {
    /// The request or status line with its line end (for a response, possibly an interim
    /// response before it).
    start: Vec<u8>,
    fields: Vec<Field>,
    /// The empty line that ends the head.
    head_end: Vec<u8>,
    body: Body,
    /// What follows the message on the connection.
    tail: Vec<u8>,
}

#[derive(Clone, Debug)]
pub(super) struct Field {
    name: Vec<u8>,
    value: Value,
    /// obs-fold: a line end and this, which starts with a space or a tab.
    fold: Option<Vec<u8>>,
    end: Vec<u8>,
}

#[derive(Clone, Debug)]
pub(super) enum Value {
    Lit(Vec<u8>),
    /// The length of the body as sent, off by `delta`, with `before` and `after` around it; when
    /// `again`, a list: the length once more, off by that.
    Length {
        before: Vec<u8>,
        delta: i8,
        again: Option<i8>,
        after: Vec<u8>,
    },
}

#[derive(Clone, Debug)]
pub(super) struct Body {
    shape: Shape,
    raw: Vec<u8>,
    chunked: Chunked,
}

/// Which of its two forms a body takes on the wire.
#[derive(Clone, Copy, Debug)]
pub(super) enum Shape {
    /// Chunked if the head has a `Transfer-Encoding` field, else raw: mostly what the head says.
    AsSaid,
    Raw,
    Chunked,
}

#[derive(Clone, Debug)]
pub(super) struct Chunked {
    chunks: Vec<Chunk>,
    last: SizeLine,
    trailers: Vec<(Vec<u8>, Vec<u8>)>,
    end: Vec<u8>,
}

#[derive(Clone, Debug)]
pub(super) struct Chunk {
    line: SizeLine,
    data: Vec<u8>,
    /// What should be CRLF.
    data_end: Vec<u8>,
}

#[derive(Clone, Debug)]
pub(super) struct SizeLine {
    before: Vec<u8>,
    /// No digits at all.
    empty: bool,
    zeros: usize,
    upper: bool,
    delta: i8,
    after: Vec<u8>,
    end: Vec<u8>,
}

impl Message {
    pub(super) fn is_chunked(&self) -> bool {
        match self.body.shape {
            Shape::AsSaid => self.fields.iter().any(|f| f.name.eq_ignore_ascii_case(b"transfer-encoding")),
            Shape::Raw => false,
            Shape::Chunked => true,
        }
    }

    pub(super) fn wire(&self) -> Vec<u8> {
        let body = if self.is_chunked() { self.body.chunked.wire() } else { self.body.raw.clone() };
        let mut out = self.start.clone();
        for f in &self.fields {
            out.extend_from_slice(&f.name);
            out.extend_from_slice(b": ");
            match &f.value {
                Value::Lit(v) => out.extend_from_slice(v),
                Value::Length { before, delta, again, after } => {
                    out.extend_from_slice(before);
                    out.extend_from_slice(off(body.len(), *delta).to_string().as_bytes());
                    if let Some(d) = again {
                        out.extend_from_slice(b", ");
                        out.extend_from_slice(off(body.len(), *d).to_string().as_bytes());
                    }
                    out.extend_from_slice(after);
                }
            }
            if let Some(fold) = &f.fold {
                out.extend_from_slice(&f.end);
                out.extend_from_slice(fold);
            }
            out.extend_from_slice(&f.end);
        }
        out.extend_from_slice(&self.head_end);
        out.extend_from_slice(&body);
        out.extend_from_slice(&self.tail);
        out
    }
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "\"{}\"", self.wire().escape_ascii())
    }
}

impl Chunked {
    pub(super) fn wire(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for c in &self.chunks {
            c.line.write(&mut out, c.data.len());
            out.extend_from_slice(&c.data);
            out.extend_from_slice(&c.data_end);
        }
        self.last.write(&mut out, 0);
        for (line, end) in &self.trailers {
            out.extend_from_slice(line);
            out.extend_from_slice(end);
        }
        out.extend_from_slice(&self.end);
        out
    }
}

impl SizeLine {
    pub(super) fn write(&self, out: &mut Vec<u8>, size: usize) {
        out.extend_from_slice(&self.before);
        if !self.empty {
            out.extend(std::iter::repeat_n(b'0', self.zeros));
            let n = off(size, self.delta);
            let hex = if self.upper { format!("{n:X}") } else { format!("{n:x}") };
            out.extend_from_slice(hex.as_bytes());
        }
        out.extend_from_slice(&self.after);
        out.extend_from_slice(&self.end);
    }
}

pub(super) fn off(n: usize, delta: i8) -> usize {
    n.saturating_add_signed(isize::from(delta))
}

// ---------------------------------------------------------------------------------------------
// The grammar.
//
// A message is tame or wild. In a tame one only the framing is perturbed — the framing field's
// value, the chunk-size lines, the chunks' ends, the trailers — so that many reach their body; in
// a wild one any line may be: its end, a field's name (case aside) and padding, an obs-fold, the
// request line, other fields with control bytes. Either way a field name's case is any.

pub(super) const NBSP: &[u8] = "\u{a0}".as_bytes();
pub(super) const IDEOGRAPHIC_SPACE: &[u8] = "\u{3000}".as_bytes();
pub(super) const NEL: &[u8] = "\u{85}".as_bytes();

pub(super) type Of<T> = BoxedStrategy<T>;

pub(super) fn pick(options: &'static [&'static [u8]]) -> Of<Vec<u8>> {
    prop::sample::select(options).prop_map(<[u8]>::to_vec).boxed()
}

pub(super) fn nothing() -> Of<Vec<u8>> {
    Just(Vec::new()).boxed()
}

/// Mostly nothing; else bytes that are whitespace to someone: space and tab (to everyone),
/// Unicode spaces (to `str::trim`), control bytes (to some).
pub(super) fn pad() -> Of<Vec<u8>> {
    prop_oneof![
        8 => nothing(),
        2 => pick(&[b" ", b"\t", b"  ", b" \t"]),
        1 => pick(&[NBSP, IDEOGRAPHIC_SPACE, NEL]),
        1 => pick(&[b"\x0b", b"\x0c", b"\0", b"\r"]),
    ]
    .boxed()
}

pub(super) fn eol(wild: bool) -> Of<Vec<u8>> {
    if !wild {
        return Just(b"\r\n".to_vec()).boxed();
    }
    prop_oneof![20 => Just(b"\r\n".to_vec()), 2 => Just(b"\n".to_vec()), 1 => pick(&[b"\r", b"\r\r\n", b"\n\r"])]
        .boxed()
}

pub(super) fn mixed_case(name: &'static str) -> Of<Vec<u8>> {
    let mixed = prop::collection::vec(any::<bool>(), name.len())
        .prop_map(move |up| name.bytes().zip(up).map(|(b, up)| if up { b.to_ascii_uppercase() } else { b }).collect());
    prop_oneof![2 => Just(name.as_bytes().to_vec()), 1 => mixed].boxed()
}

/// A field name in any case; in a wild message, sometimes with a space or tab before the colon,
/// a space before it (an obs-fold of the line before) or a NUL inside.
pub(super) fn name(base: &'static str, wild: bool) -> Of<Vec<u8>> {
    if !wild {
        return mixed_case(base);
    }
    (mixed_case(base), prop_oneof![24 => Just(0u8), 1 => Just(1), 1 => Just(2), 1 => Just(3), 1 => Just(4)])
        .prop_map(|(mut n, quirk)| {
            match quirk {
                1 => n.push(b' '),
                2 => n.push(b'\t'),
                3 => n.insert(0, b' '),
                4 => n.insert(n.len() / 2, 0),
                _ => {}
            }
            n
        })
        .boxed()
}

/// A `Content-Length` value: mostly the body's length, sometimes off by one, with a sign, a
/// list, junk, padding; or a literal that is no length.
pub(super) fn length() -> Of<Value> {
    let delta = || prop_oneof![12 => Just(0i8), 1 => Just(-1), 1 => Just(1)];
    let computed = (
        pad(),
        prop_oneof![4 => nothing(), 1 => pick(&[b"+", b"+", b"-", b"0", b"00", b"0x"])],
        delta(),
        prop_oneof![20 => Just(None), 1 => delta().prop_map(Some)],
        prop_oneof![20 => nothing(), 1 => pick(&[b",", b";", b"x", b" 1", b".0", b"\x005"])],
        pad(),
    )
        .prop_map(|(pad1, sign, delta, again, junk, pad2)| Value::Length {
            before: [pad1, sign].concat(),
            delta,
            again,
            after: [junk, pad2].concat(),
        });
    let literal = pick(&[
        b"0x5",
        b"5 5",
        b"",
        b"abc",
        b"18446744073709551615",
        b"99999999999999999999",
        b"\xef\xbc\x95", // a fullwidth 5
        b"1e1",
        b"-0",
    ])
    .prop_map(Value::Lit);
    prop_oneof![20 => computed, 1 => literal].boxed()
}

/// A `Transfer-Encoding` value: mostly `chunked`, else a coding list or an impostor, padded.
pub(super) fn coding() -> Of<Value> {
    let word = prop_oneof![
        9 => Just(b"chunked".to_vec()),
        3 => pick(&[
            b"Chunked",
            b"CHUNKED",
            b"gzip, chunked",
            b"chunked, identity",
            b"identity",
            b"xchunked",
            b"chunked;",
            b"chunk",
            b"",
            b"gzip",
            b"chunked,",
            b"chunked, chunked",
            b"\"chunked\"",
            b"gzip,chunked",
            b",chunked",
        ]),
    ];
    (pad(), word, pad()).prop_map(|(a, w, b)| Value::Lit([a, w, b].concat())).boxed()
}

pub(super) fn literal(options: &'static [&'static [u8]], wild: bool) -> Of<Value> {
    if !wild {
        return pick(options).prop_map(Value::Lit).boxed();
    }
    let pad = || prop_oneof![3 => nothing(), 1 => pad()];
    (pad(), pick(options), pad()).prop_map(|(a, w, b)| Value::Lit([a, w, b].concat())).boxed()
}

/// The field that frames the body, or none: every message gets one chance at it, before
/// whatever other fields come (which may frame it again).
pub(super) fn framing_field(wild: bool) -> Of<Vec<Field>> {
    let named =
        prop_oneof![2 => (name("content-length", wild), length()), 3 => (name("transfer-encoding", wild), coding())];
    let field = (named, eol(wild)).prop_map(|((name, value), end)| Field { name, value, fold: None, end });
    prop_oneof![1 => Just(Vec::new()), 4 => field.prop_map(|f| vec![f])].boxed()
}

pub(super) fn field(wild: bool) -> Of<Field> {
    let other = if wild {
        prop_oneof![
            8 => literal(&[b"1", b"application/json", b"\xff", b"chunked"], true),
            1 => literal(&[b"a\0b", b"a\x7fb", b"a\x1bb"], true),
        ]
        .boxed()
    } else {
        literal(&[b"1", b"application/json", b"\xff", b"chunked"], false)
    };
    let other_name = if wild {
        prop_oneof![8 => pick(&[b"x-trace", b"content-type", b"te", b"trailer"]), 1 => pick(&[b"content_length", b"transfer_encoding", b"x y"])].boxed()
    } else {
        pick(&[b"x-trace", b"content-type", b"te", b"trailer", b"content_length", b"transfer_encoding"])
    };
    // A tame message frames its body twice less often, so that more of them are read.
    let twice = if wild { 3 } else { 1 };
    let named = prop_oneof![
        twice => (name("content-length", wild), length()),
        twice => (name("transfer-encoding", wild), coding()),
        twice => (name("host", wild), literal(&[b"a", b"a:1", b"A", b"b", b"a b", b"u@a", b"[::1]:80", b"", b"a:", b"a:123456"], wild)),
        2 => (name("connection", wild), literal(&[b"close", b"keep-alive", b"Keep-Alive, close", b"upgrade", b"close, te"], wild)),
        2 => (name("expect", wild), prop_oneof![3 => literal(&[b"100-continue", b"100-Continue"], wild), 1 => literal(&[b"200-ok", b""], wild)]),
        4 => (other_name, other),
    ];
    let fold = if wild {
        prop_oneof![20 => Just(None), 1 => pick(&[b" x", b"\tx", b" chunked"]).prop_map(Some)].boxed()
    } else {
        Just(None).boxed()
    };
    (named, fold, eol(wild)).prop_map(|((name, value), fold, end)| Field { name, value, fold, end }).boxed()
}

/// A chunk-size line: mostly plain hex; else a sign, spaces, `0x`, NBSP before it, no digits,
/// leading zeros (16 of them: more digits than a size has), a size off by one, spaces or an
/// extension after it (one with a bare LF, one with a bare CR), a line end other than CRLF.
pub(super) fn size_line() -> Of<SizeLine> {
    (
        prop_oneof![24 => nothing(), 1 => pick(&[b"+", b"-", b" ", b"\t", b"0x", NBSP])],
        prop_oneof![40 => Just(false), 1 => Just(true)],
        prop_oneof![20 => Just(0usize), 1 => Just(1), 1 => Just(16)],
        any::<bool>(),
        prop_oneof![30 => Just(0i8), 1 => Just(-1), 1 => Just(1)],
        prop_oneof![
            12 => nothing(),
            3 => pick(&[b" ", b"\t", b";a=b", b" ;a", b";a=\"b c\"", b";\0", b";"]),
            2 => pick(&[b";a\nb", b";a\rb", NBSP, b"x", b" 1"]),
        ],
        prop_oneof![30 => Just(b"\r\n".to_vec()), 1 => pick(&[b"\n", b"\r", b"\n\r"])],
    )
        .prop_map(|(before, empty, zeros, upper, delta, after, end)| SizeLine {
            before,
            empty,
            zeros,
            upper,
            delta,
            after,
            end,
        })
        .boxed()
}

pub(super) fn data() -> Of<Vec<u8>> {
    let byte = prop_oneof![12 => b'a'..=b'z', 1 => prop::sample::select(&b"\r\n0;"[..])];
    prop::collection::vec(byte, 0..12).boxed()
}

pub(super) fn chunked() -> Of<Chunked> {
    let data_end = prop_oneof![30 => Just(b"\r\n".to_vec()), 1 => pick(&[b"\n", b"", b"\r", b"x\r\n"])];
    let chunk = (size_line(), data(), data_end).prop_map(|(line, data, data_end)| Chunk { line, data, data_end });
    let trailer = (
        pick(&[
            b"x-t: 1",
            b"x-t: 1",
            b"bad",
            b"x-t: a\0b",
            b" x: fold",
            b"x-t:",
            b"content-length: 5",
            b"x t: 1",
            b"x-t: \xc2\xa0",
            b": 1",
        ]),
        prop_oneof![8 => Just(b"\r\n".to_vec()), 1 => Just(b"\n".to_vec())],
    );
    (
        prop::collection::vec(chunk, 0..4),
        size_line(),
        prop_oneof![4 => Just(Vec::new()), 1 => prop::collection::vec(trailer, 1..3)],
        prop_oneof![12 => Just(b"\r\n".to_vec()), 1 => pick(&[b"\n", b""])],
    )
        .prop_map(|(chunks, last, trailers, end)| Chunked { chunks, last, trailers, end })
        .boxed()
}

pub(super) fn body() -> Of<Body> {
    let shape = prop_oneof![8 => Just(Shape::AsSaid), 1 => Just(Shape::Raw), 1 => Just(Shape::Chunked)];
    (shape, data(), chunked()).prop_map(|(shape, raw, chunked)| Body { shape, raw, chunked }).boxed()
}

pub(super) fn request() -> Of<Message> {
    prop_oneof![3 => request_of(false), 1 => request_of(true)].boxed()
}

pub(super) fn request_of(wild: bool) -> Of<Message> {
    let method = if wild {
        prop_oneof![
            4 => pick(&[b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"HEAD", b"post", b"M-SEARCH"]),
            1 => pick(&[b"G\"T", b"", b"GET\0", b"G\xc3\x89T"]),
        ]
        .boxed()
    } else {
        prop_oneof![3 => pick(&[b"GET", b"POST"]), 1 => pick(&[b"PUT", b"DELETE", b"HEAD", b"post"])].boxed()
    };
    let target = if wild {
        prop_oneof![
            2 => pick(&[b"/mcp", b"/", b"/mcp?x=1"]),
            3 => pick(&[
                b"http://a/mcp",
                b"HTTP://A/mcp",
                b"http://b/mcp",
                b"http://u@a/mcp",
                b"ftp://a/mcp",
                b"http://a",
                b"*",
                b"mcp",
                b"//a",
                b"/%zz",
                b"/a\0b",
                b"/\xc3\xa9",
                b"/a#b",
            ]),
        ]
        .boxed()
    } else {
        prop_oneof![4 => pick(&[b"/mcp", b"/", b"/mcp?x=1"]), 1 => pick(&[b"http://a/mcp", b"HTTP://A/mcp", b"*"])]
            .boxed()
    };
    let version = if wild {
        prop_oneof![
            4 => pick(&[b"HTTP/1.1", b"HTTP/1.0"]),
            1 => pick(&[b"HTTP/2.0", b"HTTP/1.2", b"http/1.1", b"HTTP/1.10", b"HTTP/0.9"]),
        ]
        .boxed()
    } else {
        prop_oneof![8 => Just(b"HTTP/1.1".to_vec()), 1 => Just(b"HTTP/1.0".to_vec())].boxed()
    };
    let space = || {
        if wild {
            prop_oneof![12 => Just(b" ".to_vec()), 1 => pick(&[b"  ", b"\t"])].boxed()
        } else {
            Just(b" ".to_vec()).boxed()
        }
    };
    // Most requests name their Host once, plainly: a request refused for its Host alone tells
    // nothing about its framing.
    let host = prop_oneof![6 => Just(true), 1 => Just(false)];
    let tail = prop_oneof![
        6 => Just(Vec::new()),
        2 => Just(b"GET /next HTTP/1.1\r\nhost: a\r\n\r\n".to_vec()),
        1 => pick(&[b"X", b"0\r\n\r\n", b"\r\n", b"GET /next HTTP/1.1\nhost: a\n\n"]),
    ];
    let fields = (framing_field(wild), prop::collection::vec(field(wild), 0..3));
    ((method, space(), target, space(), version, eol(wild)), fields, (host, 0..5usize), eol(wild), body(), tail)
        .prop_map(|((method, sp1, target, sp2, version, end), (mut fields, more), (host, at), head_end, body, tail)| {
            fields.extend(more);
            if host {
                let plain = Field {
                    name: b"host".to_vec(),
                    value: Value::Lit(b"a".to_vec()),
                    fold: None,
                    end: b"\r\n".to_vec(),
                };
                fields.insert(at.min(fields.len()), plain);
            }
            Message { start: [method, sp1, target, sp2, version, end].concat(), fields, head_end, body, tail }
        })
        .boxed()
}

pub(super) fn response() -> Of<Message> {
    prop_oneof![2 => response_of(false), 1 => response_of(true)].boxed()
}

pub(super) fn response_of(wild: bool) -> Of<Message> {
    let odd = pick(&[
        b"HTTP/1.1 204 No Content",
        b"HTTP/1.1 304 Not Modified",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK",
        b"HTTP/1.1 101 Switching Protocols",
        b"HTTP/1.1 999 X",
        b"HTTP/1.1 200",
        b"HTTP/1.1 200 \xffK",
    ]);
    let status = if wild {
        prop_oneof![3 => odd, 1 => pick(&[b"HTTP/1.1 20 OK", b"HTTP/2 200 OK", b"HTTP/1.1  200 OK", b"HTTP/1.1 200 O\0K"])].boxed()
    } else {
        prop_oneof![
            8 => Just(b"HTTP/1.1 200 OK".to_vec()),
            2 => pick(&[b"HTTP/1.0 200 OK", b"HTTP/1.1 404 Not Found", b"HTTP/1.1 500 Oops"]),
            1 => odd,
        ]
        .boxed()
    };
    (status, eol(wild), framing_field(wild), prop::collection::vec(field(wild), 0..3), eol(wild), body())
        .prop_map(|(status, end, mut fields, more, head_end, body)| {
            fields.extend(more);
            Message { start: [status, end].concat(), fields, head_end, body, tail: Vec::new() }
        })
        .boxed()
}
