//! The adapter conformance suite, for every adapter Belfry ships (`Arc` is in scope inside
//! the macro).
#![allow(clippy::unwrap_used)]

use belfry::core::adapter::LocalAdapter;

belfry_tests::adapter_conformance!(local_adapter, |local| Arc::new(LocalAdapter::new(local)));
