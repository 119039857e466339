//! Deciding what to do (pure planners over desired, remembered and observed state) apart from
//! doing it.
pub mod binding;
pub mod connector;
pub mod dry_run;
