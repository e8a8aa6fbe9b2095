//! The scanner on its own, for `bench/records.sh`:
//!   records gen HEADER_FILE BYTES OUT   a CMS-shaped file (every field
//!                                       quoted, embedded CRLF in addresses,
//!                                       doubled quotes) of at least BYTES
//!   records count FILE                  records, columns, seconds, GB/s
//!   records csv-crate FILE              records as the `csv` crate reads
//!                                       them (the engine of `xsv count`)
//!
//! A bench tool read by a script, not a report of openpay's: the
//! workspace's ban on println! (closed pipes) does not apply here.
#![allow(clippy::disallowed_macros)]

use std::io::{Read, Write};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("gen") if args.len() == 5 => generate(&args[2], args[3].parse().unwrap(), &args[4]),
        Some("count") if args.len() == 3 => count(&args[2]),
        Some("csv-crate") if args.len() == 3 => csv_crate(&args[2]),
        _ => {
            eprintln!(
                "usage: records gen HEADER_FILE BYTES OUT | records count FILE | records csv-crate FILE"
            );
            std::process::exit(2);
        }
    }
}

fn generate(header_file: &str, bytes: u64, out: &str) {
    let header = std::fs::read_to_string(header_file).unwrap();
    let header = header.lines().next().unwrap();
    let columns = header.split(',').count();
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(out).unwrap());
    let quoted: Vec<String> = header.split(',').map(|c| format!("\"{c}\"")).collect();
    write!(w, "{}\r\n", quoted.join(",")).unwrap();
    let mut rng = fastrand::Rng::with_seed(2026);
    let mut written = 0u64;
    let mut i = 0u64;
    let mut row = String::new();
    while written < bytes {
        row.clear();
        for c in 0..columns {
            if c > 0 {
                row.push(',');
            }
            row.push('"');
            match c {
                0 => row.push_str("UNCHANGED"),
                9 => row.push_str("O\"\"NEIL"),
                // Street address with a line break, as some records have.
                11 if i.is_multiple_of(7) => {
                    row.push_str(&format!("{} MAIN ST\r\nSUITE {}", rng.u16(..), rng.u8(..)))
                }
                30 => row.push_str(&format!("{}.{:02}", rng.u32(..100_000), rng.u8(..100))),
                _ => {
                    let len = rng.usize(0..24);
                    row.extend((0..len).map(|_| rng.alphanumeric()));
                }
            }
            row.push('"');
        }
        row.push_str("\r\n");
        w.write_all(row.as_bytes()).unwrap();
        written += row.len() as u64;
        i += 1;
    }
    w.flush().unwrap();
}

fn count(path: &str) {
    let mut f = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut scanner = openpay_records::Scanner::new();
    let started = Instant::now();
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        scanner.feed(&buf[..n]);
    }
    let s = scanner.summary();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "records={} columns={} ragged={} unterminated_quote={} seconds={secs:.3} gb_per_s={:.2}",
        s.records,
        s.columns.unwrap_or(0),
        s.ragged,
        s.unterminated_quote,
        s.bytes as f64 / secs / 1e9
    );
}

/// What `xsv count` does without an index: one `ByteRecord` reused.
fn csv_crate(path: &str) {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(path)
        .unwrap();
    let mut record = csv::ByteRecord::new();
    let mut n = 0u64;
    while reader.read_byte_record(&mut record).unwrap() {
        n += 1;
    }
    println!("records={n}");
}
