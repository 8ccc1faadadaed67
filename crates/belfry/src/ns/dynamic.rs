//! Dynamic namespaces: a parent's children, created on a matching CONNECT and forgotten when
//! empty.

use std::{collections::HashMap, fmt, sync::Arc};

use belfry_core::{Str, adapter::AdapterFactory};
use parking_lot::RwLock;

use super::{Namespace, NsOptions};
use crate::{ConnectError, handler::ErasedHandler};

/// A dynamic namespace: a matcher for namespace names, and the handler and middlewares its
/// children share. A child is created by the first CONNECT whose name matches, and forgotten
/// when its last socket leaves.
pub(crate) struct ParentNamespace {
    matcher: Box<dyn Fn(&str) -> bool + Send + Sync>,
    on_connect: ErasedHandler,
    pub(super) middlewares: RwLock<Vec<ErasedHandler<Result<(), ConnectError>>>>,
    children: RwLock<HashMap<String, Arc<Namespace>>>,
    options: NsOptions,
    adapter: AdapterFactory,
    /// Its children's sockets run their event handlers one at a time.
    serial_handlers: std::sync::atomic::AtomicBool,
}

impl fmt::Debug for ParentNamespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParentNamespace")
            .field("children", &self.children.read().keys())
            .finish_non_exhaustive()
    }
}

impl ParentNamespace {
    pub(crate) fn new(
        matcher: Box<dyn Fn(&str) -> bool + Send + Sync>,
        on_connect: ErasedHandler,
        options: NsOptions,
        adapter: AdapterFactory,
    ) -> Arc<ParentNamespace> {
        Arc::new(ParentNamespace {
            matcher,
            on_connect,
            middlewares: RwLock::new(Vec::new()),
            children: RwLock::new(HashMap::new()),
            options,
            adapter,
            serial_handlers: std::sync::atomic::AtomicBool::new(false),
        })
    }

    pub(crate) fn add_middleware(&self, middleware: ErasedHandler<Result<(), ConnectError>>) {
        self.middlewares.write().push(middleware);
    }

    /// Makes the sockets of its children (those made from now on and those there are) run
    /// their event handlers one at a time.
    pub(crate) fn set_serial_handlers(&self, serial: bool) {
        self.serial_handlers
            .store(serial, std::sync::atomic::Ordering::Relaxed);
        for child in self.children.read().values() {
            child.set_serial_handlers(serial);
        }
    }

    /// The existing child named `name`.
    pub(crate) fn child(&self, name: &str) -> Option<Arc<Namespace>> {
        self.children.read().get(name).cloned()
    }

    /// The child named `name`, created if `name` matches and it does not exist yet.
    pub(crate) fn child_for_connect(self: &Arc<Self>, name: &str) -> Option<Arc<Namespace>> {
        if let Some(child) = self.child(name) {
            return Some(child);
        }
        if !(self.matcher)(name) {
            return None;
        }
        let mut children = self.children.write();
        let child = children.entry(name.to_owned()).or_insert_with(|| {
            tracing::debug!(ns = %name, "dynamic namespace created");
            let child = Namespace::new(
                Str::from(name),
                self.on_connect.clone(),
                self.options,
                Some(Arc::downgrade(self)),
                &self.adapter,
            );
            child.set_serial_handlers(
                self.serial_handlers
                    .load(std::sync::atomic::Ordering::Relaxed),
            );
            child
        });
        Some(child.clone())
    }

    pub(crate) fn children(&self) -> Vec<Arc<Namespace>> {
        self.children.read().values().cloned().collect()
    }

    /// Puts `child` back if it was forgotten while a socket was joining it.
    pub(super) fn keep(&self, child: &Arc<Namespace>) {
        self.children
            .write()
            .entry(child.name().to_owned())
            .or_insert_with(|| child.clone());
    }

    /// Forgets `child` if it has no socket (checked under the lock that `keep` takes).
    pub(super) fn forget_if_empty(&self, child: &Namespace) {
        let mut children = self.children.write();
        if let Some(current) = children.get(child.name())
            && std::ptr::eq(Arc::as_ptr(current), child)
            && child.is_empty()
        {
            children.remove(child.name());
            tracing::debug!(ns = %child.name(), "empty dynamic namespace removed");
        }
    }
}
