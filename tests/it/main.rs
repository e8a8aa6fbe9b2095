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
mod pipeline;
mod runs;
mod ssh;
mod standalone;
mod tf;
