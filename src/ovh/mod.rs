//! The OVH API: endpoints, credentials, request signing, the HTTP client (budget, retries,
//! errors) and the typed `/email/exchange` calls the operator makes.
pub mod credentials;
pub mod endpoint;
pub mod model;
pub mod secret;
pub mod signing;

pub use credentials::{Auth, Credentials, CredentialsError};
pub use endpoint::Endpoint;
pub use secret::SecretString;
pub mod budget;
pub mod client;
pub mod error;
pub mod exchange;
pub mod json_array;
pub mod retry;
pub mod shared_reads;

#[cfg(test)]
mod hostile_answers;

pub use budget::{Budget, BudgetRegistry, BudgetSettings};
pub use client::{ClientOptions, OvhClient};
pub use error::{ApiError, OvhError};
pub use exchange::{ExchangeApi, ExchangeClient};
