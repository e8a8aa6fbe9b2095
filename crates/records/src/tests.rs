//! The scanner against the `csv` crate (a maintained RFC 4180 reader) on
//! generated files: every shape CMS writes, fed in random pieces.

use super::*;

/// A random CSV: quoted fields with commas, doubled quotes, CR and LF;
/// CRLF or LF line ends; maybe a BOM; maybe no final line end; some
/// ragged records; some blank lines.
fn generate(rng: &mut fastrand::Rng) -> Vec<u8> {
    let crlf = rng.bool();
    let eol: &[u8] = if crlf { b"\r\n" } else { b"\n" };
    let mut out = Vec::new();
    if rng.u8(..4) == 0 {
        out.extend_from_slice(BOM);
    }
    let columns = rng.usize(1..12);
    let records = rng.usize(0..40);
    for r in 0..=records {
        if r > 0 && rng.u8(..20) == 0 {
            out.extend_from_slice(eol); // a blank line
        }
        let n = if r > 0 && rng.u8(..8) == 0 {
            rng.usize(1..14)
        } else {
            columns
        };
        for f in 0..n {
            if f > 0 {
                out.push(b',');
            }
            let len = rng.usize(0..12);
            let text: Vec<u8> = (0..len)
                .map(|_| *rng.choice(b"ab, \"\r\n9").unwrap())
                .collect();
            let needs_quotes = text.iter().any(|b| b"\",\r\n".contains(b)) || (n == 1 && len == 0);
            if needs_quotes || rng.bool() {
                out.push(b'"');
                for &b in &text {
                    if b == b'"' {
                        out.push(b'"');
                    }
                    out.push(b);
                }
                out.push(b'"');
            } else {
                out.extend_from_slice(&text);
            }
        }
        if r < records || rng.bool() {
            out.extend_from_slice(eol);
        }
    }
    out
}

/// What the `csv` crate reads: field counts per record, header first.
fn oracle(bytes: &[u8]) -> Vec<usize> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    reader
        .byte_records()
        .map(|r| r.expect("generated CSV is valid").len())
        .collect()
}

fn check(bytes: &[u8], s: &Summary) {
    let counts = oracle(bytes);
    assert_eq!(s.bytes, bytes.len() as u64);
    assert_eq!(s.records, counts.len().saturating_sub(1) as u64, "records");
    assert_eq!(s.columns, counts.first().map(|&c| c as u64), "columns");
    let ragged: Vec<u64> = counts
        .iter()
        .enumerate()
        .skip(1)
        .filter(|&(_, &c)| Some(c as u64) != s.columns)
        .map(|(i, _)| i as u64)
        .collect();
    assert_eq!(s.ragged, ragged.len() as u64, "ragged count");
    let kept: Vec<u64> = s.ragged_first.iter().map(|r| r.record).collect();
    assert_eq!(
        kept,
        ragged.into_iter().take(RAGGED_KEPT).collect::<Vec<_>>()
    );
    assert!(!s.unterminated_quote);
}

#[test]
fn matches_the_csv_crate_on_generated_files_in_random_pieces() {
    let mut rng = fastrand::Rng::with_seed(11);
    for _ in 0..3000 {
        let bytes = generate(&mut rng);
        let whole = scan(&bytes);
        check(&bytes, &whole);
        let mut s = Scanner::new();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let n = rng.usize(1..=rest.len().min(150));
            s.feed(&rest[..n]);
            rest = &rest[n..];
        }
        assert_eq!(s.summary(), whole, "pieces change nothing");
    }
}

#[test]
fn a_cut_inside_quotes_is_reported() {
    let mut rng = fastrand::Rng::with_seed(7);
    let mut cut_inside = 0;
    for _ in 0..2000 {
        let bytes = generate(&mut rng);
        if bytes.is_empty() {
            continue;
        }
        let at = rng.usize(0..=bytes.len());
        // In valid RFC 4180, quotes only open, close or come doubled
        // inside a quoted field: an odd count means a field is open.
        let inside = bytes[..at].iter().filter(|&&b| b == b'"').count() % 2 == 1;
        cut_inside += usize::from(inside);
        assert_eq!(scan(&bytes[..at]).unterminated_quote, inside);
    }
    assert!(
        cut_inside > 100,
        "the generator cut inside quotes {cut_inside} times"
    );
}

#[test]
fn the_header_without_bom_and_line_end() {
    let s = scan(b"\xEF\xBB\xBF\"A\",\"B \"\"x\"\"\"\r\n\"1\",\"2\"\r\n");
    assert_eq!(s.header.as_deref(), Some(&b"\"A\",\"B \"\"x\"\"\""[..]));
    assert_eq!(fields(s.header.as_deref().unwrap()), ["A", "B \"x\""]);
    assert_eq!((s.records, s.columns), (1, Some(2)));
}

#[test]
fn empty_and_header_only_files() {
    let s = scan(b"");
    assert_eq!((s.records, s.columns, s.header), (0, None, None));
    let s = scan(b"a,b,c");
    assert_eq!((s.records, s.columns), (0, Some(3)));
    assert_eq!(s.header.as_deref(), Some(&b"a,b,c"[..]));
}

#[test]
fn ragged_records_carry_number_and_offset() {
    let s = scan(b"a,b\n1,2\n1,2,3\n1\n");
    assert_eq!(s.ragged, 2);
    assert_eq!(
        s.ragged_first,
        [
            Ragged {
                record: 2,
                offset: 8,
                fields: 3
            },
            Ragged {
                record: 3,
                offset: 14,
                fields: 1
            },
        ]
    );
}
