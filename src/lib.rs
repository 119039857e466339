//! `sendconnector-operator`: keeps OVHcloud Exchange send connectors and the mailboxes that use
//! them equal to Kubernetes resources.
pub mod allocator;
pub mod cli;
pub mod controller;
pub mod crd;
pub mod local;
pub mod ovh;
pub mod reconcile;
pub mod simulator_cli;
pub mod telemetry;
pub mod text;
pub mod verify_header;
