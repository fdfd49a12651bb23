//! The evidence: the decision log and its files, the report built from it, the live view, the
//! report page and the metrics.

pub mod decision_log;
pub mod fleet;
pub mod live;
pub mod log_files;
pub mod metrics;
pub mod page;
pub mod record;
pub mod report;
pub mod traces;
pub mod xmlsec_log;
