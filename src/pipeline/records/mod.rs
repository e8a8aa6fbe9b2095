//! Records, not just bytes: what a file holds as CSV, checked against what
//! the publisher says it holds.
//!
//! The bytes are scanned once, as they stream in ([`openpay_records`], a
//! third consumer beside the writer and the hashers); the result is kept
//! in the file's sidecar record ([`RecordScan`]) so that a verified file
//! reused by a later run keeps its count without a rescan. A resumed
//! download rescans the bytes already on disk once, in the same read that
//! re-hashes them: the digests have to be rebuilt from disk anyway, the
//! scan costs a fraction of the hashing, and it cannot disagree with the
//! bytes the way a saved scanner state could after a crash between the
//! write of the bytes and the write of the state.

pub mod datastore;
pub mod layouts;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::pipeline::Dataset;
use datastore::Expected;

/// The scan of one file, as kept in its sidecar record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordScan {
    pub records: u64,
    pub columns: Option<u64>,
    /// The header record as written (without BOM and line end).
    pub header: Option<String>,
    pub header_sha256: Option<String>,
    pub ragged: RaggedRecords,
}

impl RecordScan {
    pub fn from_summary(s: &openpay_records::Summary) -> Self {
        RecordScan {
            records: s.records,
            columns: s.columns,
            header: s
                .header
                .as_deref()
                .map(|h| String::from_utf8_lossy(h).into_owned()),
            header_sha256: s.header.as_deref().map(|h| hex::encode(Sha256::digest(h))),
            ragged: RaggedRecords {
                count: s.ragged,
                first: s
                    .ragged_first
                    .iter()
                    .map(|r| RaggedAt {
                        record: r.record,
                        offset: r.offset,
                        fields: r.fields,
                    })
                    .collect(),
            },
        }
    }

    /// Scans a whole file on disk (one read).
    pub fn of_file(path: &std::path::Path) -> std::io::Result<Self> {
        use std::io::Read;
        let mut f = std::fs::File::open(path)?;
        let mut scanner = openpay_records::Scanner::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            scanner.feed(&buf[..n]);
        }
        Ok(Self::from_summary(&scanner.summary()))
    }
}

/// Records whose field count differs from the header's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaggedRecords {
    pub count: u64,
    /// The first few, with where they start.
    pub first: Vec<RaggedAt>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaggedAt {
    /// 1-based data record number (the header is record 0).
    pub record: u64,
    /// Byte offset of the record's first byte.
    pub offset: u64,
    pub fields: u64,
}

/// Whose header the file has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeaderMatch {
    /// The datastore's column names for this dataset.
    Publisher,
    /// A layout shipped in `layouts/`.
    Known,
    Unknown,
}

/// How an unknown header differs from the closest layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderDiff {
    /// `publisher` or a `layouts/` file name.
    pub against: String,
    pub added: Vec<String>,
    pub missing: Vec<String>,
    pub renamed: Vec<Renamed>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Renamed {
    pub column: usize,
    pub from: String,
    pub to: String,
}

/// The record audit of one file: the fields `file_audits.jsonl` gains.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordAudit {
    pub records: Option<u64>,
    pub columns: Option<u64>,
    pub header_sha256: Option<String>,
    pub header_match: Option<HeaderMatch>,
    pub header_diff: Option<HeaderDiff>,
    pub ragged_records: Option<RaggedRecords>,
    pub records_expected: Option<u64>,
    /// Why `records_expected` is null.
    pub records_expected_reason: Option<String>,
    pub records_match: Option<bool>,
}

impl RecordAudit {
    /// What is known before the file is read: the publisher's count.
    pub fn expecting(expected: &Expected) -> Self {
        match expected {
            Ok(p) => RecordAudit {
                records_expected: Some(p.count),
                ..Default::default()
            },
            Err(reason) => RecordAudit {
                records_expected_reason: Some(reason.clone()),
                ..Default::default()
            },
        }
    }

    /// Checks a scan against the publisher and the known layouts.
    pub fn check(scan: &RecordScan, dataset: Dataset, expected: &Expected) -> Self {
        let mut a = Self::expecting(expected);
        a.records = Some(scan.records);
        a.columns = scan.columns;
        a.header_sha256 = scan.header_sha256.clone();
        a.ragged_records = Some(scan.ragged.clone());
        a.records_match = a.records_expected.map(|e| e == scan.records);
        let names = scan
            .header
            .as_deref()
            .map(|h| openpay_records::fields(h.as_bytes()))
            .unwrap_or_default();
        let publisher = expected
            .as_ref()
            .ok()
            .map(|p| &p.columns)
            .filter(|c| !c.is_empty());
        let mut candidates: Vec<(String, Vec<String>)> = publisher
            .map(|c| ("publisher".to_string(), c.clone()))
            .into_iter()
            .collect();
        candidates.extend(layouts::of(dataset).map(|l| (l.name.to_string(), l.columns())));
        a.header_match = Some(if publisher.is_some_and(|p| *p == names) {
            HeaderMatch::Publisher
        } else if candidates.iter().any(|(_, c)| *c == names) {
            HeaderMatch::Known
        } else {
            a.header_diff = candidates
                .iter()
                .max_by_key(|(_, c)| c.iter().filter(|n| names.contains(n)).count())
                .map(|(against, layout)| diff(against, layout, &names));
            HeaderMatch::Unknown
        });
        a
    }

    /// What is wrong with the file, one line each.
    pub fn findings(&self) -> Vec<(FindingKind, String)> {
        let mut out = Vec::new();
        if let (Some(got), Some(want), Some(false)) =
            (self.records, self.records_expected, self.records_match)
        {
            out.push((
                FindingKind::RecordsMismatch,
                format!("{got} records, the publisher's datastore counts {want}"),
            ));
        }
        if self.header_match == Some(HeaderMatch::Unknown) {
            let detail = match &self.header_diff {
                Some(d) => d.describe(),
                None => "no layout to compare it with".into(),
            };
            out.push((
                FindingKind::UnknownHeader,
                format!("the header is neither the publisher's nor a known layout: {detail}"),
            ));
        }
        if let Some(r) = self.ragged_records.as_ref().filter(|r| r.count > 0) {
            let at: Vec<String> = r
                .first
                .iter()
                .map(|x| {
                    format!(
                        "record {} at byte {} ({} fields)",
                        x.record, x.offset, x.fields
                    )
                })
                .collect();
            out.push((
                FindingKind::RaggedRecords,
                format!(
                    "{} record(s) with a field count other than the header's {}: {}",
                    r.count,
                    self.columns.unwrap_or_default(),
                    at.join(", ")
                ),
            ));
        }
        out
    }
}

impl HeaderDiff {
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.renamed.is_empty() {
            let r: Vec<String> = self
                .renamed
                .iter()
                .map(|r| format!("column {} {} -> {}", r.column + 1, r.from, r.to))
                .collect();
            parts.push(format!("renamed {}", r.join(", ")));
        }
        if !self.added.is_empty() {
            parts.push(format!("added {}", self.added.join(", ")));
        }
        if !self.missing.is_empty() {
            parts.push(format!("missing {}", self.missing.join(", ")));
        }
        if parts.is_empty() {
            parts.push("same names in another order".into());
        }
        format!("against {}: {}", self.against, parts.join("; "))
    }
}

/// Names in the header and not the layout are added, the reverse missing;
/// an added and a missing name at the same column are one rename.
fn diff(against: &str, layout: &[String], names: &[String]) -> HeaderDiff {
    let added: Vec<(usize, &String)> = names
        .iter()
        .enumerate()
        .filter(|(_, n)| !layout.contains(n))
        .collect();
    let missing: Vec<(usize, &String)> = layout
        .iter()
        .enumerate()
        .filter(|(_, n)| !names.contains(n))
        .collect();
    let renamed: Vec<Renamed> = added
        .iter()
        .filter_map(|&(i, to)| {
            missing
                .iter()
                .find(|&&(j, _)| j == i)
                .map(|&(_, from)| Renamed {
                    column: i,
                    from: from.clone(),
                    to: to.clone(),
                })
        })
        .collect();
    let in_rename = |i: usize| renamed.iter().any(|r| r.column == i);
    HeaderDiff {
        against: against.to_string(),
        added: added
            .iter()
            .filter(|(i, _)| !in_rename(*i))
            .map(|(_, n)| (*n).clone())
            .collect(),
        missing: missing
            .iter()
            .filter(|(i, _)| !in_rename(*i))
            .map(|(_, n)| (*n).clone())
            .collect(),
        renamed,
    }
}

/// The kinds of finding a file's records can raise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    RecordsMismatch,
    UnknownHeader,
    RaggedRecords,
}

#[cfg(test)]
mod tests {
    use super::*;
    use datastore::Publisher;

    fn scan_of(text: &str) -> RecordScan {
        RecordScan::from_summary(&openpay_records::scan(text.as_bytes()))
    }

    fn general_header() -> String {
        layouts::of(Dataset::GeneralPayments)
            .next()
            .unwrap()
            .columns()
            .join(",")
    }

    #[test]
    fn a_known_layout_without_a_publisher() {
        let s = scan_of(&format!("{}\n", general_header()));
        let a = RecordAudit::check(&s, Dataset::GeneralPayments, &Err("404".into()));
        assert_eq!(a.header_match, Some(HeaderMatch::Known));
        assert_eq!(
            (a.records, a.records_expected, a.records_match),
            (Some(0), None, None)
        );
        assert!(a.findings().is_empty(), "{:?}", a.findings());
    }

    #[test]
    fn renamed_added_missing_against_the_publisher() {
        let publisher = Ok(Publisher {
            count: 1,
            columns: vec!["A".into(), "B".into(), "C".into(), "D".into()],
        });
        let s = scan_of("A,X,C,E,F\n1,2,3,4,5\n");
        let a = RecordAudit::check(&s, Dataset::GeneralPayments, &publisher);
        assert_eq!(a.header_match, Some(HeaderMatch::Unknown));
        let d = a.header_diff.clone().unwrap();
        assert_eq!(d.against, "publisher");
        assert_eq!(
            d.renamed,
            [
                Renamed {
                    column: 1,
                    from: "B".into(),
                    to: "X".into()
                },
                Renamed {
                    column: 3,
                    from: "D".into(),
                    to: "E".into()
                }
            ]
        );
        assert_eq!((d.added, d.missing), (vec!["F".to_string()], vec![]));
        assert_eq!(a.records_match, Some(true));
        let kinds: Vec<FindingKind> = a.findings().into_iter().map(|f| f.0).collect();
        assert_eq!(kinds, [FindingKind::UnknownHeader]);
    }

    #[test]
    fn a_count_mismatch_and_ragged_records_are_findings() {
        let publisher = Ok(Publisher {
            count: 3,
            columns: vec!["A".into(), "B".into()],
        });
        let s = scan_of("A,B\n1,2\n1,2,3\n");
        let a = RecordAudit::check(&s, Dataset::GeneralPayments, &publisher);
        assert_eq!(a.header_match, Some(HeaderMatch::Publisher));
        let f = a.findings();
        assert_eq!(f[0].0, FindingKind::RecordsMismatch);
        assert!(
            f[0].1.contains("2 records") && f[0].1.contains("counts 3"),
            "{}",
            f[0].1
        );
        assert_eq!(f[1].0, FindingKind::RaggedRecords);
        assert!(
            f[1].1.contains("record 2 at byte 8 (3 fields)"),
            "{}",
            f[1].1
        );
    }
}
