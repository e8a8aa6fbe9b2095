//! The three datasets CMS publishes per program year: what `--dataset`
//! names, what lake paths and manifests record, and how the catalog titles
//! them. Owned by the pipeline; the command line re-uses it.

/// The three Open Payments datasets the CMS catalog publishes per program year.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Dataset {
    GeneralPayments,
    ResearchPayments,
    OwnershipPayments,
}

impl Dataset {
    /// The word CMS uses in catalog titles: "2024 General Payment Data".
    pub fn title_word(self) -> &'static str {
        match self {
            Dataset::GeneralPayments => "General",
            Dataset::ResearchPayments => "Research",
            Dataset::OwnershipPayments => "Ownership",
        }
    }

    /// The kebab-case name used on the command line and in lake paths.
    pub fn as_str(self) -> &'static str {
        match self {
            Dataset::GeneralPayments => "general-payments",
            Dataset::ResearchPayments => "research-payments",
            Dataset::OwnershipPayments => "ownership-payments",
        }
    }
}

impl std::fmt::Display for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
