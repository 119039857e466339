//! A local simulator of the OVHcloud Exchange API.
