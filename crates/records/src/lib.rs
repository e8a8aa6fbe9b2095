//! A streaming record counter for CSV files as CMS writes them (RFC 4180:
//! quoted fields holding commas, doubled quotes and CR/LF; CRLF or LF line
//! ends; an optional UTF-8 byte-order mark; a last record with or without
//! its line end).
//!
//! It is fed the bytes of a file in whatever pieces they arrive and never
//! looks back, so it can run beside a download without a second pass over
//! a 9 GB file. It counts records, checks every record's field count
//! against the header's, keeps the header, and says at the end whether the
//! bytes stopped inside a quoted field (a cut transfer: a complete CSV
//! never does).
//!
//! Why blocks and not a byte-at-a-time state machine: a per-byte branch on
//! the quote state runs at a few hundred MB/s, slower than the network it
//! keeps up with. Here each 64-byte block becomes three bitmasks (quotes,
//! commas, line feeds); a prefix XOR over the quote bits marks which bytes
//! lie inside quotes (a doubled quote toggles twice and changes nothing),
//! and separators outside quotes are counted with `popcount`. Only record
//! ends (one per CMS record of ~1.5 KB, not per byte) take a slow path.
//!
//! Rules, the same as Python's `csv` module on RFC 4180 input: a record
//! ends at a line feed outside quotes (a CR before it belongs to the line
//! end); a blank line is no record; the first record is the header and is
//! not counted. A quote inside an unquoted field is not RFC 4180 and CMS
//! never writes one; the scanner reads it as opening a quoted field, as a
//! strict parser would.

#![deny(unsafe_code)]

/// How many ragged records are remembered with their position.
pub const RAGGED_KEPT: usize = 10;

/// Header bytes kept; a longer first record is reported with its field
/// count but no names (no CMS header comes near this).
pub const HEADER_CAP: usize = 1 << 20;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A record whose field count differs from the header's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ragged {
    /// 1-based data record number (the header is record 0).
    pub record: u64,
    /// Byte offset of the record's first byte in the file.
    pub offset: u64,
    pub fields: u64,
}

/// What the scan found, once the bytes are all in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Bytes scanned.
    pub bytes: u64,
    /// Data records (the header excluded).
    pub records: u64,
    /// Fields of the header; `None` for a file without any record.
    pub columns: Option<u64>,
    /// The header record's bytes without BOM and line end; `None` when
    /// there is no header or it is longer than [`HEADER_CAP`].
    pub header: Option<Vec<u8>>,
    /// Records whose field count differs from the header's.
    pub ragged: u64,
    /// The first [`RAGGED_KEPT`] of them.
    pub ragged_first: Vec<Ragged>,
    /// The bytes end inside a quoted field: the file was cut short.
    pub unterminated_quote: bool,
}

/// The scan state between pieces of a file.
#[derive(Debug, Clone)]
pub struct Scanner {
    /// Offset of the next block to process (bytes in `tail` come after).
    pos: u64,
    /// All ones while inside quotes at the end of the last block.
    inside: u64,
    tail: [u8; 64],
    tail_len: usize,
    /// The byte before `pos` (to tell a CR-only line from a record).
    last: u8,
    /// Separators outside quotes in the current record.
    commas: u64,
    record_start: u64,
    /// Records seen, the header included.
    seen: u64,
    columns: Option<u64>,
    header_buf: Vec<u8>,
    header_span: Option<(u64, u64)>,
    ragged: u64,
    ragged_first: Vec<Ragged>,
}

impl Default for Scanner {
    fn default() -> Self {
        Self::new()
    }
}

impl Scanner {
    pub fn new() -> Self {
        Self {
            pos: 0,
            inside: 0,
            tail: [0; 64],
            tail_len: 0,
            last: 0,
            commas: 0,
            record_start: 0,
            seen: 0,
            columns: None,
            header_buf: Vec::new(),
            header_span: None,
            ragged: 0,
            ragged_first: Vec::new(),
        }
    }

    /// Bytes fed so far.
    pub fn bytes(&self) -> u64 {
        self.pos + self.tail_len as u64
    }

    /// Scans the next piece of the file.
    pub fn feed(&mut self, mut data: &[u8]) {
        if self.columns.is_none() && self.header_buf.len() < HEADER_CAP {
            let room = HEADER_CAP - self.header_buf.len();
            self.header_buf
                .extend_from_slice(&data[..data.len().min(room)]);
        }
        if self.tail_len > 0 {
            let take = (64 - self.tail_len).min(data.len());
            self.tail[self.tail_len..self.tail_len + take].copy_from_slice(&data[..take]);
            self.tail_len += take;
            data = &data[take..];
            if self.tail_len < 64 {
                return;
            }
            let block = self.tail;
            self.tail_len = 0;
            self.block(&block);
        }
        let mut blocks = data.chunks_exact(64);
        for block in &mut blocks {
            self.block(block.try_into().expect("64-byte chunk"));
        }
        let rest = blocks.remainder();
        self.tail[..rest.len()].copy_from_slice(rest);
        self.tail_len = rest.len();
    }

    /// The result for the bytes fed so far; the scanner can go on after.
    pub fn summary(&self) -> Summary {
        let mut s = self.clone();
        let n = s.tail_len;
        let end = s.pos + n as u64;
        if n > 0 {
            let mut block = [0u8; 64];
            block[..n].copy_from_slice(&s.tail[..n]);
            s.tail_len = 0;
            // Zero padding is neither quote, comma nor line feed.
            s.block(&block);
            s.last = block[n - 1];
        }
        let unterminated_quote = s.inside != 0;
        if end > s.record_start && !(end - s.record_start == 1 && s.last == b'\r') {
            s.record(s.commas + 1, s.record_start, end);
        }
        let header = s.header_span.and_then(|(start, end)| {
            let (start, end) = (start as usize, end as usize);
            if end > s.header_buf.len() {
                return None;
            }
            let mut h = &s.header_buf[start..end];
            if start == 0 {
                h = h.strip_prefix(BOM).unwrap_or(h);
            }
            Some(h.strip_suffix(b"\r").unwrap_or(h).to_vec())
        });
        Summary {
            bytes: end,
            records: s.seen.saturating_sub(1),
            columns: s.columns,
            header,
            ragged: s.ragged,
            ragged_first: s.ragged_first,
            unterminated_quote,
        }
    }

    #[inline(always)]
    fn block(&mut self, block: &[u8; 64]) {
        let (quotes, commas, feeds) = masks(block);
        let inside = prefix_xor(quotes) ^ self.inside;
        self.inside = ((inside as i64) >> 63) as u64;
        let commas = commas & !inside;
        let mut feeds = feeds & !inside;
        if feeds == 0 {
            self.commas += u64::from(commas.count_ones());
        } else {
            let mut commas = commas;
            while feeds != 0 {
                let i = feeds.trailing_zeros();
                let below = (1u64 << i) - 1;
                self.commas += u64::from((commas & below).count_ones());
                commas &= !below;
                let before = if i == 0 {
                    self.last
                } else {
                    block[i as usize - 1]
                };
                self.line_end(self.pos + u64::from(i), before);
                feeds &= feeds - 1;
            }
            self.commas += u64::from(commas.count_ones());
        }
        self.last = block[63];
        self.pos += 64;
    }

    /// A line feed outside quotes at `at`; `before` is the byte before it.
    #[cold]
    fn line_end(&mut self, at: u64, before: u8) {
        let len = at - self.record_start;
        if !(len == 0 || (len == 1 && before == b'\r')) {
            self.record(self.commas + 1, self.record_start, at);
        }
        self.commas = 0;
        self.record_start = at + 1;
    }

    fn record(&mut self, fields: u64, start: u64, end: u64) {
        self.seen += 1;
        match self.columns {
            None => {
                self.columns = Some(fields);
                self.header_span = Some((start, end));
                if end as usize > self.header_buf.len() {
                    self.header_buf = Vec::new();
                } else {
                    self.header_buf.truncate(end as usize);
                }
            }
            Some(columns) if columns != fields => {
                self.ragged += 1;
                if self.ragged_first.len() < RAGGED_KEPT {
                    self.ragged_first.push(Ragged {
                        record: self.seen - 1,
                        offset: start,
                        fields,
                    });
                }
            }
            Some(_) => {}
        }
    }
}

/// Bit `i` of each mask is set when byte `i` is a quote, a comma, a line
/// feed: four 16-byte compares per class with SSE2 (always present on
/// x86_64).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(unsafe_code)]
fn masks(block: &[u8; 64]) -> (u64, u64, u64) {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
    };
    // SAFETY: SSE2 is part of the x86_64 baseline, so its intrinsics are
    // always available; each load reads bytes 16k..16k+16 of the 64-byte
    // array (in bounds), and loadu has no alignment requirement.
    unsafe {
        let quote = _mm_set1_epi8(b'"' as i8);
        let comma = _mm_set1_epi8(b',' as i8);
        let feed = _mm_set1_epi8(b'\n' as i8);
        let (mut q, mut c, mut n) = (0u64, 0u64, 0u64);
        for k in 0..4 {
            let v = _mm_loadu_si128(block.as_ptr().add(16 * k).cast::<__m128i>());
            let shift = 16 * k;
            q |= u64::from(_mm_movemask_epi8(_mm_cmpeq_epi8(v, quote)) as u16) << shift;
            c |= u64::from(_mm_movemask_epi8(_mm_cmpeq_epi8(v, comma)) as u16) << shift;
            n |= u64::from(_mm_movemask_epi8(_mm_cmpeq_epi8(v, feed)) as u16) << shift;
        }
        (q, c, n)
    }
}

/// The same, one byte at a time, where SSE2 is not available.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn masks(block: &[u8; 64]) -> (u64, u64, u64) {
    let (mut q, mut c, mut n) = (0u64, 0u64, 0u64);
    for (i, &b) in block.iter().enumerate() {
        q |= u64::from(b == b'"') << i;
        c |= u64::from(b == b',') << i;
        n |= u64::from(b == b'\n') << i;
    }
    (q, c, n)
}

/// Bit `i` of the result is the XOR of bits `0..=i`: set from an opening
/// quote up to (not including) its closing one.
#[inline(always)]
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// The fields of one record (a header), unquoted.
pub fn fields(record: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = Vec::new();
    let (mut quoted, mut i) = (false, 0);
    while i < record.len() {
        let b = record[i];
        match (quoted, b) {
            (true, b'"') if record.get(i + 1) == Some(&b'"') => {
                field.push(b'"');
                i += 1;
            }
            (_, b'"') => quoted = !quoted,
            (false, b',') => out.push(String::from_utf8_lossy(&std::mem::take(&mut field)).into()),
            _ => field.push(b),
        }
        i += 1;
    }
    out.push(String::from_utf8_lossy(&field).into());
    out
}

/// Scans a whole buffer at once.
pub fn scan(bytes: &[u8]) -> Summary {
    let mut s = Scanner::new();
    s.feed(bytes);
    s.summary()
}

#[cfg(test)]
mod tests;
