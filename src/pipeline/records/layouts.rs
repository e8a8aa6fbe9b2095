//! The CSV headers CMS is known to have published, embedded from
//! `layouts/` (each file's source is cited in `layouts/README.md`), so a
//! header can be recognised offline when the datastore does not answer.

use crate::pipeline::Dataset;

/// One published header.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// The file name under `layouts/`, e.g. `general-payments.91.csv`.
    pub name: &'static str,
    pub dataset: Dataset,
    text: &'static str,
}

macro_rules! layout {
    ($file:literal, $dataset:expr) => {
        Layout {
            name: $file,
            dataset: $dataset,
            text: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/layouts/", $file)),
        }
    };
}

/// Every layout shipped, newest first within a dataset.
pub const LAYOUTS: &[Layout] = &[
    layout!("general-payments.91.csv", Dataset::GeneralPayments),
    layout!("research-payments.176.csv", Dataset::ResearchPayments),
    layout!("ownership-payments.29.csv", Dataset::OwnershipPayments),
];

impl Layout {
    /// The column names, in order.
    pub fn columns(&self) -> Vec<String> {
        let line = self.text.lines().next().unwrap_or_default();
        openpay_records::fields(line.as_bytes())
    }
}

/// The layouts of one dataset.
pub fn of(dataset: Dataset) -> impl Iterator<Item = &'static Layout> {
    LAYOUTS.iter().filter(move |l| l.dataset == dataset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_layout_has_the_columns_its_name_says() {
        for l in LAYOUTS {
            let n: usize = l.name.split('.').nth(1).unwrap().parse().unwrap();
            assert_eq!(l.columns().len(), n, "{}", l.name);
            assert!(l.columns().iter().all(|c| !c.is_empty()), "{}", l.name);
        }
        assert_eq!(of(Dataset::GeneralPayments).count(), 1);
    }
}
