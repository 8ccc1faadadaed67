//! The adapter conformance suite, for every adapter Belfry ships: the in-memory one, and the
//! Redis one in each protocol (the sharded one in each subscription mode: the dynamic modes
//! subscribe rooms as they come and go). Each Redis-backed test runs its own `redis-server`,
//! and each module has its own channel prefix.
#![allow(clippy::unwrap_used)]

use belfry_redis::{Protocol, SubscriptionMode};
use belfry_tests::adapter_conformance::{local, redis};

belfry_tests::adapter_conformance!(local_adapter, local);

belfry_tests::adapter_conformance!(redis_classic, |sockets| redis(
    sockets,
    "conformance-classic",
    Protocol::Classic
));

belfry_tests::adapter_conformance!(redis_sharded_static, |sockets| redis(
    sockets,
    "conformance-sharded-static",
    Protocol::Sharded(SubscriptionMode::Static)
));

belfry_tests::adapter_conformance!(redis_sharded_dynamic, |sockets| redis(
    sockets,
    "conformance-sharded-dynamic",
    Protocol::Sharded(SubscriptionMode::Dynamic)
));

belfry_tests::adapter_conformance!(redis_sharded_dynamic_private, |sockets| redis(
    sockets,
    "conformance-sharded-dynamic-private",
    Protocol::Sharded(SubscriptionMode::DynamicPrivate)
));
