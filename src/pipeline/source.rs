//! The CMS source: its DKAN catalog and where each file is downloaded from.
//!
//! Files are planned from the catalog, never from guessed URLs: the
//! publication stamp in CMS download URLs changes twice a year. The source
//! is either the real https host or a local directory laid out the same way
//! (`{dir}/api/1/metastore/schemas/dataset/items`), which is how openpay
//! runs with no internet.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use url::Url;

use super::Dataset;
use super::PipelineError;
use super::retry::{RetryPolicy, parse_retry_after, retryable_status};

/// Catalog path under the source root, as DKAN serves it.
pub const CATALOG_PATH: &str = "api/1/metastore/schemas/dataset/items";

/// Identifies openpay to CMS, so their operators can tell who is calling.
pub const USER_AGENT: &str = concat!(
    "openpay/",
    env!("CARGO_PKG_VERSION"),
    " (CMS Open Payments ingestion; +https://openpaymentsdata.cms.gov/about/api)"
);

/// First program year of Open Payments.
pub const FIRST_YEAR: i32 = 2013;

#[derive(Debug, Clone)]
pub enum Source {
    Http { base: Url, client: reqwest::Client },
    Dir { root: PathBuf },
}

/// Where one file's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Http(Url),
    File(PathBuf),
}

/// One dataset of the catalog that has a download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    pub title: String,
    pub download_url: String,
    /// The dataset's identifier, for its datastore (stable across refreshes).
    pub identifier: Option<String>,
    /// The distribution's identifier (changes with every refresh).
    pub distribution_id: Option<String>,
}

/// One file to ingest, decided before anything is downloaded.
#[derive(Debug, Clone)]
pub struct PlannedFile {
    pub dataset: Dataset,
    pub year: i32,
    pub url: String,
    pub file_name: String,
    /// The object key relative to the destination prefix.
    pub key: String,
    /// `Err` when the catalog's URL cannot be used safely; the file is then
    /// `failed` in the audit and the others go on.
    pub location: Result<Location, String>,
    /// Catalog identifiers, for the publisher's count in the datastore.
    pub dataset_id: Option<String>,
    pub distribution_id: Option<String>,
}

impl Source {
    /// `https://…`/`http://…` is the CMS host (or a test server); anything
    /// else is a local directory laid out like it.
    pub fn parse(spec: &str) -> Result<Self, PipelineError> {
        let spec = spec.trim();
        if spec.starts_with("http://") || spec.starts_with("https://") {
            let mut base = Url::parse(spec)
                .map_err(|e| PipelineError::Input(format!("--source-url {spec}: not a valid URL ({e}); use e.g. https://openpaymentsdata.cms.gov")))?;
            if !base.path().ends_with('/') {
                base.set_path(&format!("{}/", base.path()));
            }
            let client = http_client().map_err(|e| {
                PipelineError::Blocked(format!("cannot build the HTTP client: {e}"))
            })?;
            return Ok(Source::Http { base, client });
        }
        let path = spec.strip_prefix("file://").unwrap_or(spec);
        let root = PathBuf::from(path);
        if !root.is_dir() {
            return Err(PipelineError::Input(format!(
                "--source-url {spec}: not an http(s) URL and not a directory; give https://openpaymentsdata.cms.gov or a directory holding {CATALOG_PATH}"
            )));
        }
        Ok(Source::Dir { root })
    }

    pub fn describe(&self) -> String {
        match self {
            Source::Http { base, .. } => base.as_str().trim_end_matches('/').to_string(),
            Source::Dir { root } => root.display().to_string(),
        }
    }

    pub fn client(&self) -> Option<&reqwest::Client> {
        match self {
            Source::Http { client, .. } => Some(client),
            Source::Dir { .. } => None,
        }
    }

    /// Fetches and parses the catalog. A host that is unreachable, keeps
    /// failing, or answers something that is not JSON at all (an HTML
    /// maintenance page) could not be evaluated (3); JSON that is not the
    /// DKAN shape, or a local catalog that does not parse, is bad input (2).
    pub async fn catalog(&self, retry: &RetryPolicy) -> Result<Vec<CatalogEntry>, PipelineError> {
        let (origin, text) = match self {
            Source::Dir { root } => {
                let path = root.join(CATALOG_PATH);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    PipelineError::Input(format!(
                        "cannot read the catalog {}: {e}; a local source must hold {CATALOG_PATH}",
                        path.display()
                    ))
                })?;
                (path.display().to_string(), text)
            }
            Source::Http { base, client } => {
                let url = base.join(CATALOG_PATH).expect("constant path joins");
                let text = fetch_text(client, &url, retry).await?;
                if serde_json::from_str::<serde::de::IgnoredAny>(&text).is_err() {
                    return Err(PipelineError::SourceUnavailable {
                        url: url.to_string(),
                        reason: format!("answered {} instead of the JSON catalog", sniff(&text)),
                    });
                }
                (url.to_string(), text)
            }
        };
        parse_catalog(&text).map_err(|e| PipelineError::Input(format!("catalog {origin}: {e}")))
    }

    /// Resolves a catalog download URL. Relative URLs resolve against the
    /// source root; for a local source the result must stay inside it.
    pub fn resolve(&self, download_url: &str) -> Result<Location, String> {
        match self {
            Source::Http { base, .. } => {
                let url = base
                    .join(download_url)
                    .map_err(|e| format!("download URL {download_url:?} is not a URL: {e}"))?;
                match url.scheme() {
                    "http" | "https" => Ok(Location::Http(url)),
                    other => Err(format!(
                        "download URL {download_url:?} has scheme {other}; only http(s) is fetched"
                    )),
                }
            }
            Source::Dir { root } => {
                let rel = match Url::parse(download_url) {
                    Ok(u) => u.path().trim_start_matches('/').to_string(),
                    Err(_) => download_url.trim_start_matches('/').to_string(),
                };
                let rel = Path::new(&rel);
                if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
                    return Err(format!(
                        "download URL {download_url:?} leaves the source directory; refusing to read it"
                    ));
                }
                Ok(Location::File(root.join(rel)))
            }
        }
    }
}

fn http_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(120))
        .build()
}

async fn fetch_text(
    client: &reqwest::Client,
    url: &Url,
    retry: &RetryPolicy,
) -> Result<String, PipelineError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (err, retry_after) = match client.get(url.clone()).send().await {
            Ok(resp) if resp.status().is_success() => match resp.text().await {
                Ok(t) => return Ok(t),
                Err(e) => (format!("reading the body failed: {e}"), None),
            },
            Ok(resp) => {
                let status = resp.status().as_u16();
                let ra = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after);
                if !retryable_status(status) {
                    return Err(PipelineError::Blocked(format!(
                        "catalog {url} answered HTTP {status}; check --source-url"
                    )));
                }
                (format!("HTTP {status}"), ra)
            }
            Err(e) => (format!("{e}"), None),
        };
        if attempt >= retry.max_attempts {
            return Err(PipelineError::SourceUnavailable {
                url: url.to_string(),
                reason: format!("failed {attempt} times (last: {err})"),
            });
        }
        let delay = retry.delay(attempt, retry_after);
        tracing::warn!(%url, attempt, error = %err, delay_ms = delay.as_millis() as u64, "catalog fetch failed; retrying");
        tokio::time::sleep(delay).await;
    }
}

/// What a non-JSON answer looks like, for the error: an HTML page's title
/// (CDNs and maintenance pages have one), else its first characters.
fn sniff(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let title = lower.find("<title>").and_then(|start| {
        let rest = &text[start + 7..];
        rest.find('<').map(|end| rest[..end].trim().to_string())
    });
    match title {
        Some(t) if !t.is_empty() => format!("an HTML page titled {t:?}"),
        _ if lower.trim_start().starts_with('<') => "an HTML page".to_string(),
        _ => {
            let head: String = text.trim().chars().take(40).collect();
            format!("{head:?}")
        }
    }
}

/// Parses the DKAN dataset list. Each item needs a `title`; its first
/// distribution's `downloadURL` (or `data.downloadURL` when the catalog
/// shows reference ids) is the file. Items without a download are skipped.
pub fn parse_catalog(text: &str) -> Result<Vec<CatalogEntry>, String> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| format!("not valid JSON ({e}); is --source-url the CMS DKAN host?"))?;
    let items = value
        .as_array()
        .ok_or("expected a JSON array of datasets")?;
    let mut out = Vec::new();
    for item in items {
        let Some(title) = item.get("title").and_then(Value::as_str) else {
            continue;
        };
        let Some(dist) = item.get("distribution").and_then(Value::as_array) else {
            continue;
        };
        let found = dist.iter().find_map(|d| {
            let url = d
                .get("downloadURL")
                .or_else(|| d.get("data").and_then(|x| x.get("downloadURL")))
                .and_then(Value::as_str)?;
            Some((url, d.get("identifier").and_then(Value::as_str)))
        });
        if let Some((url, distribution_id)) = found {
            out.push(CatalogEntry {
                title: title.trim().to_string(),
                download_url: url.trim().to_string(),
                identifier: item
                    .get("identifier")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                distribution_id: distribution_id.map(str::to_string),
            });
        }
    }
    if out.is_empty() && !items.is_empty() {
        return Err("no dataset in it has a distribution with a downloadURL".into());
    }
    Ok(out)
}

/// The catalog title CMS uses for a dataset and year.
pub fn title_for(dataset: Dataset, year: i32) -> String {
    format!("{year} {} Payment Data", dataset.title_word())
}

/// Years the catalog has for a dataset, for error messages.
fn years_in(catalog: &[CatalogEntry], dataset: Dataset) -> Vec<i32> {
    let suffix = format!(" {} payment data", dataset.title_word().to_lowercase());
    let mut years: Vec<i32> = catalog
        .iter()
        .filter_map(|e| {
            e.title
                .to_lowercase()
                .strip_suffix(&suffix)
                .and_then(|y| y.trim().parse().ok())
        })
        .collect();
    years.sort_unstable();
    years.dedup();
    years
}

/// Plans every (dataset, year) pair from the catalog. A pair the catalog
/// lacks is bad input naming the years it does have.
pub fn plan(
    source: &Source,
    catalog: &[CatalogEntry],
    datasets: &[Dataset],
    years: &[i32],
) -> Result<Vec<PlannedFile>, PipelineError> {
    let mut files = Vec::new();
    for &dataset in datasets {
        for &year in years {
            let want = title_for(dataset, year).to_lowercase();
            let Some(entry) = catalog.iter().find(|e| e.title.to_lowercase() == want) else {
                let have = years_in(catalog, dataset);
                let have = if have.is_empty() {
                    "none".to_string()
                } else {
                    have.iter()
                        .map(i32::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                return Err(PipelineError::Input(format!(
                    "--year {year} --dataset {dataset}: the catalog at {} has no \"{}\"; years it has: {have}",
                    source.describe(),
                    title_for(dataset, year)
                )));
            };
            let file_name = file_name_of(&entry.download_url);
            let location = file_name
                .clone()
                .and_then(|_| source.resolve(&entry.download_url));
            let file_name = file_name.unwrap_or_else(|_| "(unsafe name)".into());
            files.push(PlannedFile {
                dataset,
                year,
                url: entry.download_url.clone(),
                key: format!("raw/dataset={dataset}/year={year}/{file_name}"),
                file_name,
                location,
                dataset_id: entry.identifier.clone(),
                distribution_id: entry.distribution_id.clone(),
            });
        }
    }
    Ok(files)
}

/// The last path segment of a download URL, accepted only when it is a
/// plain file name: no separators, no dot-dot, nothing that could escape
/// the lake or the work dir once joined to a path.
pub fn file_name_of(download_url: &str) -> Result<String, String> {
    let path = match Url::parse(download_url) {
        Ok(u) => u.path().to_string(),
        Err(_) => download_url
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .to_string(),
    };
    let raw = path.rsplit('/').next().unwrap_or_default();
    let name = percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .to_string();
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(name)
    } else {
        Err(format!(
            "download URL {download_url:?} does not end in a plain file name; refusing to write {name:?}"
        ))
    }
}

/// Validates `--year` before any network call.
pub fn check_year(year: i32) -> Result<(), PipelineError> {
    let max = chrono::Datelike::year(&chrono::Utc::now()) + 1;
    if (FIRST_YEAR..=max).contains(&year) {
        Ok(())
    } else {
        Err(PipelineError::Input(format!(
            "--year {year}: Open Payments program years run from {FIRST_YEAR} to {}; pick a year in that range",
            max - 1
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CATALOG: &str = r#"[
      {"title": "2023 General Payment Data", "identifier": "gp-2023", "distribution": [{"downloadURL": "https://download.cms.gov/openpayments/PGYR2023_P06282024_06122024/OP_DTL_GNRL_PGYR2023_P06282024_06122024.csv"}]},
      {"title": "2022 General Payment Data", "distribution": [{"identifier": "x", "data": {"downloadURL": "https://download.cms.gov/openpayments/PGYR2022/OP_DTL_GNRL_PGYR2022.csv"}}]},
      {"title": "2023 Research Payment Data", "distribution": [{"downloadURL": "r.csv"}]},
      {"title": "Something else", "distribution": []}
    ]"#;

    fn http() -> Source {
        Source::parse("https://openpaymentsdata.cms.gov").unwrap()
    }

    #[test]
    fn parses_both_distribution_shapes() {
        let c = parse_catalog(CATALOG).unwrap();
        assert_eq!(c.len(), 3);
        assert!(c[1].download_url.ends_with("OP_DTL_GNRL_PGYR2022.csv"));
        assert_eq!(c[0].identifier.as_deref(), Some("gp-2023"));
        assert_eq!(c[1].distribution_id.as_deref(), Some("x"));
    }

    #[test]
    fn malformed_catalogs() {
        assert!(
            parse_catalog("{not json")
                .unwrap_err()
                .contains("not valid JSON")
        );
        assert!(parse_catalog(r#"{"a": 1}"#).unwrap_err().contains("array"));
        assert!(parse_catalog(r#"[{"title": "x", "distribution": [{}]}]"#).is_err());
    }

    #[test]
    fn plans_key_and_url_from_catalog() {
        let c = parse_catalog(CATALOG).unwrap();
        let p = plan(&http(), &c, &[Dataset::GeneralPayments], &[2023]).unwrap();
        assert_eq!(
            p[0].key,
            "raw/dataset=general-payments/year=2023/OP_DTL_GNRL_PGYR2023_P06282024_06122024.csv"
        );
        assert!(
            matches!(&p[0].location, Ok(Location::Http(u)) if u.host_str() == Some("download.cms.gov"))
        );
    }

    #[test]
    fn missing_year_lists_available_years() {
        let c = parse_catalog(CATALOG).unwrap();
        let e = plan(&http(), &c, &[Dataset::GeneralPayments], &[2019])
            .unwrap_err()
            .to_string();
        assert!(e.contains("2022, 2023"), "{e}");
        let e = plan(&http(), &c, &[Dataset::OwnershipPayments], &[2023])
            .unwrap_err()
            .to_string();
        assert!(e.contains("years it has: none"), "{e}");
    }

    #[test]
    fn unsafe_file_names_are_refused() {
        for bad in [
            "https://h/a/%2e%2e%2fetc%2fpasswd",
            "https://h/a/..%2F..%2Fx.csv",
            "https://h/a/",
            "https://h/a/.hidden",
            "https://h/a/x%00.csv",
        ] {
            assert!(file_name_of(bad).is_err(), "{bad}");
        }
        assert_eq!(
            file_name_of("https://h/a/OP_DTL_GNRL_PGYR2023.csv?x=1").unwrap(),
            "OP_DTL_GNRL_PGYR2023.csv"
        );
    }

    #[test]
    fn dir_source_stays_inside_root() {
        let dir = tempfile::tempdir().unwrap();
        let s = Source::parse(dir.path().to_str().unwrap()).unwrap();
        assert!(s.resolve("../../etc/passwd").is_err());
        assert!(s.resolve("/abs/ok.csv").is_ok());
        assert_eq!(
            s.resolve("a/b.csv").unwrap(),
            Location::File(dir.path().join("a/b.csv"))
        );
    }

    #[test]
    fn years() {
        assert!(check_year(1999).is_err());
        assert!(check_year(2013).is_ok());
        assert!(check_year(3000).is_err());
    }
}
