//! One integration-test binary (ripgrep's layout): every test drives the
//! real `openpay` binary or library against real servers started here —
//! moto_server, sshd, the CMS fixture server, terraform.

mod airflow;
mod awschecks;
mod bootstrap;
mod cidr;
mod common;
mod doctor;
mod drift;
mod faults;
mod layering;
mod pipeline;
mod pipes;
mod promises;
mod records;
mod runs;
mod sarif;
mod ssh;
mod standalone;
mod strict_config;
mod target;
mod taxonomy;
mod tf;
