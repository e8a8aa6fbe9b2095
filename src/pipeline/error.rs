//! Errors that end a run before or outside per-file work (their exit
//! classes: `exit.rs`).

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Bad input: year, dataset, destination, source.
    #[error("{0}")]
    Input(String),
    /// The source or destination could not be reached or refused us.
    #[error("{0}")]
    Blocked(String),
    /// The source is down or not itself (an HTML maintenance page instead
    /// of the catalog, 5xx after every retry): nothing about the input is
    /// wrong, the run could not be evaluated now.
    #[error(
        "the CMS source is unavailable: {url} {reason}; nothing was written, retry later (or check --source-url)"
    )]
    SourceUnavailable { url: String, reason: String },
}
