//! TLS to Redis (`rediss://`), with the `tls` feature: the command connections through the
//! `redis` crate, the subscriber (which speaks RESP itself) through `tokio-rustls`, both
//! trusting the same roots (the system's, or the certificates given to the builder).

use redis::{Client, ConnectionAddr, RedisResult};

use super::{backend::Backend, subscriber::Io};

/// What the subscriber needs to open TLS connections: nothing without the `tls` feature.
#[cfg(not(feature = "tls"))]
#[derive(Clone, Default)]
pub(crate) struct Tls;

/// What the subscriber needs to open TLS connections (`None`: plain TCP).
#[cfg(feature = "tls")]
#[derive(Clone, Default)]
pub(crate) struct Tls(Option<std::sync::Arc<rustls::ClientConfig>>);

/// The client for `url`, trusting `roots` (PEM certificates) rather than the system's.
#[cfg(not(feature = "tls"))]
pub(crate) fn client(url: &str, roots: Option<&[u8]>) -> RedisResult<Backend> {
    if roots.is_some() {
        return Err(no_tls());
    }
    Ok(Backend::Single {
        client: Client::open(url)?,
        tls: Tls,
    })
}

/// The client for `url`, trusting `roots` (PEM certificates) rather than the system's.
#[cfg(feature = "tls")]
pub(crate) fn client(url: &str, roots: Option<&[u8]>) -> RedisResult<Backend> {
    let client = match roots {
        Some(roots) => Client::build_with_tls(
            url,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(roots.to_vec()),
            },
        )?,
        None => Client::open(url)?,
    };
    let tls = match client.get_connection_info().addr() {
        ConnectionAddr::TcpTls { insecure: true, .. } => {
            return Err(invalid(
                "rediss:// without certificate verification is not supported",
            ));
        }
        ConnectionAddr::TcpTls { .. } => Tls(Some(std::sync::Arc::new(config(roots)?))),
        _ => Tls(None),
    };
    Ok(Backend::Single { client, tls })
}

/// The backend of a Redis Cluster whose first nodes are `nodes`, trusting `roots` for
/// `rediss://` (with the `tls` feature).
pub(crate) fn cluster(nodes: &[String], roots: Option<&[u8]>) -> RedisResult<Backend> {
    #[cfg(not(feature = "tls"))]
    if roots.is_some() {
        return Err(no_tls());
    }
    Ok(Backend::Cluster {
        nodes: nodes.to_vec(),
        roots: roots.map(<[u8]>::to_vec),
        client: with_roots(cluster_builder(nodes), roots).build()?,
    })
}

/// `builder` trusting `roots` (with the `tls` feature; without, `cluster` refused them).
pub(crate) fn with_roots(
    builder: redis::cluster::ClusterClientBuilder,
    roots: Option<&[u8]>,
) -> redis::cluster::ClusterClientBuilder {
    #[cfg(feature = "tls")]
    if let Some(roots) = roots {
        return builder.certs(redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(roots.to_vec()),
        });
    }
    let _ = roots;
    builder
}

fn cluster_builder(nodes: &[String]) -> redis::cluster::ClusterClientBuilder {
    redis::cluster::ClusterClientBuilder::new(nodes.to_vec())
        .connection_timeout(super::HEALTH_TIMEOUT)
        .response_timeout(super::HEALTH_TIMEOUT)
}

#[cfg(feature = "tls")]
fn config(roots: Option<&[u8]>) -> RedisResult<rustls::ClientConfig> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut store = rustls::RootCertStore::empty();
    match roots {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|_| invalid("the root certificates are not PEM"))?;
                store
                    .add(cert)
                    .map_err(|_| invalid("a root certificate is invalid"))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = store.add(cert);
            }
        }
    }
    if store.is_empty() {
        return Err(invalid("no root certificate to trust"));
    }
    // The process's default crypto provider when the application installed one (the
    // `redis` crate's own connections need one installed when the process has several
    // providers), ring otherwise: this one never panics for want of a default.
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| {
            #[allow(deprecated)] // ring is this crate's provider; its defaults are kept
            std::sync::Arc::new(rustls::crypto::ring::default_provider())
        });
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|_| invalid("no TLS version in common"))?
        .with_root_certificates(store)
        .with_no_client_auth())
}

/// Opens the subscriber's connection to `addr` (TLS for `rediss://`).
pub(crate) async fn connect(addr: &ConnectionAddr, tls: &Tls) -> RedisResult<Box<dyn Io>> {
    match addr {
        ConnectionAddr::Tcp(host, port) => {
            let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream))
        }
        ConnectionAddr::Unix(path) => Ok(Box::new(tokio::net::UnixStream::connect(path).await?)),
        #[cfg(feature = "tls")]
        ConnectionAddr::TcpTls { host, port, .. } => {
            let Tls(Some(config)) = tls else {
                return Err(invalid("no TLS configuration for rediss://"));
            };
            let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
            stream.set_nodelay(true)?;
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|_| invalid("the redis host is not a valid TLS server name"))?;
            let stream = tokio_rustls::TlsConnector::from(config.clone())
                .connect(name, stream)
                .await?;
            Ok(Box::new(stream))
        }
        _ => {
            let _ = tls;
            Err(no_tls())
        }
    }
}

fn invalid(what: &'static str) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, what))
}

fn no_tls() -> redis::RedisError {
    invalid("rediss:// and root certificates need belfry-redis's `tls` feature")
}
