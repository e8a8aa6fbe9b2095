//! Errors that end a run before or outside per-file work.

use crate::exit::{Classify, Exit};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Bad input: year, dataset, destination, source.
    #[error("{0}")]
    Input(String),
    /// The source or destination could not be reached or refused us.
    #[error("{0}")]
    Blocked(String),
}

impl Classify for PipelineError {
    fn exit(&self) -> Exit {
        match self {
            PipelineError::Input(_) => Exit::Usage,
            PipelineError::Blocked(_) => Exit::Blocked,
        }
    }
}
