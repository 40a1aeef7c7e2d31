//! Networks on a backend, below everything that trains or runs one: the GAN
//! step (`crate::train`), the evaluation's classifier (`crate::eval`) and
//! `gan-gpu sample` all build a [`Network`] from a
//! [`NetworkSpec`](crate::model::NetworkSpec) and run its forward and
//! backward passes.

pub mod network;

pub use network::Network;
