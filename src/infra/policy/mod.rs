//! The IAM policy model: parse identity-policy documents and evaluate a
//! request against them the way AWS documents it ("Policy evaluation
//! logic"), plus the normal form that `iam drift` compares.
//!
//! The evaluator is deliberately honest about what it cannot know: a
//! statement whose `Condition` cannot be decided from the request context
//! makes the answer [`Decision::Inconclusive`] rather than a guess.

mod condition;
mod document;
mod evaluate;
mod matcher;
pub mod normalize;

#[cfg(test)]
mod tests;

pub use document::{ActionMatch, Effect, PolicyDocument, PolicyError, ResourceMatch, Statement};
pub use evaluate::{Decision, Evaluation, MatchedStatement, Request, evaluate};
pub use matcher::{glob_covers, glob_match};
