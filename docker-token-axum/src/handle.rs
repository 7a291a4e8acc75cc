//! [`ServiceHandle`]: a [`TokenService`] that can be swapped while the server runs.

use std::sync::{Arc, PoisonError, RwLock};

use docker_token_core::TokenService;

/// A shared, replaceable [`TokenService`] (for configuration reloads).
///
/// Each request takes a clone of the current service (an `Arc` clone under a read lock,
/// tens of nanoseconds) and keeps it until it is answered; [`replace`](Self::replace)
/// affects only requests that start afterwards. A replaced service is dropped when its
/// last in-flight request finishes.
///
/// ```
/// # fn demo(old: docker_token_core::TokenService, new: docker_token_core::TokenService) {
/// use docker_token_axum::{ServiceHandle, TokenRouter};
///
/// let handle = ServiceHandle::new(old);
/// let app = TokenRouter::with_handle(handle.clone()).build();
/// // later, e.g. on SIGHUP, after the new configuration validated:
/// let _previous = handle.replace(new);
/// # let _ = app; }
/// ```
#[derive(Clone, Debug)]
pub struct ServiceHandle {
    current: Arc<RwLock<TokenService>>,
}

impl ServiceHandle {
    /// A handle holding `service`.
    #[must_use]
    pub fn new(service: TokenService) -> Self {
        Self {
            current: Arc::new(RwLock::new(service)),
        }
    }

    /// The service new requests use now.
    #[must_use]
    pub fn current(&self) -> TokenService {
        // The lock only guards a pointer swap; a poisoned lock still holds a whole service.
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Makes `service` the one new requests use and returns the previous one (in-flight
    /// requests keep using it until they finish).
    pub fn replace(&self, service: TokenService) -> TokenService {
        let mut guard = self.current.write().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *guard, service)
    }
}

impl From<TokenService> for ServiceHandle {
    fn from(service: TokenService) -> Self {
        Self::new(service)
    }
}
