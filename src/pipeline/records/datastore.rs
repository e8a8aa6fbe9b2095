//! What the publisher says a file holds: the DKAN datastore's record count
//! and original column names for the dataset being ingested.
//!
//! `GET {source}/api/1/datastore/query/{datasetId}/0?count=true&results=false&schema=true`
//! answers `count` and `schema.<distributionId>.fields.<machine_name>.description`
//! (the CSV's own column name). The dataset identifier comes from the
//! catalog entry: distribution ids change with every refresh. The
//! datastore is an extra: slow, missing or odd, it yields a reason, never
//! a failed run.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::super::source::Source;

/// The publisher's count and header for one dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publisher {
    pub count: u64,
    /// Original column names in order; empty when the schema gave none.
    pub columns: Vec<String>,
}

/// The publisher's numbers, or why there are none.
pub type Expected = Result<Publisher, String>;

/// Asks the datastore, waiting at most `timeout`.
pub async fn query(
    source: &Source,
    dataset_id: Option<&str>,
    distribution_id: Option<&str>,
    timeout: Duration,
) -> Expected {
    let Source::Http { base, client } = source else {
        return Err("the source is a local directory, which has no datastore".into());
    };
    let id = dataset_id.ok_or("the catalog entry has no dataset identifier")?;
    let mut url = base
        .join("api/1/datastore/query/")
        .map_err(|e| format!("no datastore URL under {base}: {e}"))?;
    url.path_segments_mut()
        .map_err(|()| format!("no datastore URL under {base}"))?
        .pop_if_empty()
        .push(id)
        .push("0");
    url.set_query(Some("count=true&results=false&schema=true"));
    let answer = tokio::time::timeout(timeout, async {
        let resp = client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| format!("the datastore query failed: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!(
                "the datastore answered HTTP {}",
                resp.status().as_u16()
            ));
        }
        resp.text()
            .await
            .map_err(|e| format!("reading the datastore's answer failed: {e}"))
    })
    .await
    .map_err(|_| format!("the datastore did not answer within {timeout:?}"))??;
    parse(&answer, distribution_id)
}

/// The parts of the answer used; maps keep the server's order (the
/// schema lists the columns in file order).
#[derive(Deserialize)]
struct Answer {
    count: Option<Value>,
    schema: Option<Ordered<Distribution>>,
}

#[derive(Deserialize)]
struct Distribution {
    #[serde(default = "Ordered::empty")]
    fields: Ordered<Field>,
}

#[derive(Deserialize)]
struct Field {
    description: Option<String>,
}

/// A JSON object as its entries in order.
struct Ordered<T>(Vec<(String, T)>);

impl<T> Ordered<T> {
    fn empty() -> Self {
        Ordered(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Ordered<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Entries<T> {
            type Value = Ordered<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = m.next_entry()? {
                    out.push(entry);
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(Entries(std::marker::PhantomData))
    }
}

/// Reads `count` and the column descriptions of the distribution (the
/// catalog's, else the schema's only one). Fields without a description
/// (DKAN's own `record_number`) are not CSV columns.
pub fn parse(answer: &str, distribution_id: Option<&str>) -> Expected {
    let answer: Answer = serde_json::from_str(answer)
        .map_err(|e| format!("the datastore's answer is not the DKAN shape: {e}"))?;
    let count = answer
        .count
        .and_then(|c| c.as_u64().or_else(|| c.as_str()?.parse().ok()))
        .ok_or("the datastore's answer has no count")?;
    let dists = answer.schema.map(|s| s.0).unwrap_or_default();
    let dist = match dists
        .iter()
        .find(|(id, _)| Some(id.as_str()) == distribution_id)
    {
        Some((_, d)) => Some(d),
        None if dists.len() == 1 => Some(&dists[0].1),
        None => None,
    };
    let columns = dist
        .map(|d| {
            d.fields
                .0
                .iter()
                .filter_map(|(_, f)| f.description.as_deref())
                .map(|d| d.trim().to_string())
                .filter(|d| !d.is_empty())
                .collect()
        })
        .unwrap_or_default();
    Ok(Publisher { count, columns })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_and_columns_in_schema_order() {
        let text = r#"{"count": "12", "schema": {"d1": {"fields": {
                "record_number": {"type": "serial"},
                "zeta": {"type": "text", "description": "Change_Type"},
                "alpha": {"type": "text", "description": "Covered_Recipient_Type"}
            }}}}"#;
        let p = parse(text, Some("other")).unwrap();
        assert_eq!(p.count, 12);
        assert_eq!(
            p.columns,
            ["Change_Type", "Covered_Recipient_Type"],
            "server order, not sorted"
        );
        assert!(parse(r#"{"results": []}"#, None).is_err());
        assert!(parse("<html>", None).is_err());
    }
}
