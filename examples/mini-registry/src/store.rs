//! The registry's storage: everything in memory, behind one mutex.
//!
//! Blobs are content-addressed (one copy however many repositories link them); each
//! repository has its set of linked blobs, its manifests (by digest) and its tags. Every key
//! was checked by the route parser (names, tags, digests) or generated here (upload ids), so
//! no client text is used unchecked — and nothing touches the file system.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use aws_lc_rs::digest::{Context, SHA256};
use axum::body::Bytes;

/// A stored manifest.
#[derive(Clone, Debug)]
pub(crate) struct Manifest {
    /// Its `Content-Type`.
    pub(crate) media_type: String,
    /// The exact bytes pushed (the digest is over these).
    pub(crate) body: Bytes,
    /// OCI 1.1 `subject.digest`, for the referrers API.
    pub(crate) subject: Option<String>,
    /// OCI 1.1 `artifactType` (or the config's media type), for the referrers API.
    pub(crate) artifact_type: Option<String>,
    /// `annotations`, copied into referrers listings.
    pub(crate) annotations: Option<serde_json::Value>,
}

#[derive(Debug, Default)]
struct Repo {
    blobs: HashSet<String>,
    manifests: HashMap<String, Manifest>,
    tags: BTreeMap<String, String>,
}

#[derive(Debug)]
struct Upload {
    repo: String,
    data: Vec<u8>,
}

#[derive(Debug, Default)]
struct Inner {
    blobs: HashMap<String, Bytes>,
    repos: BTreeMap<String, Repo>,
    uploads: HashMap<String, Upload>,
}

/// Why a store operation failed; mapped to distribution's error codes by the API.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StoreError {
    /// `BLOB_UPLOAD_UNKNOWN`.
    UploadUnknown,
    /// `DIGEST_INVALID`: the content does not match, or the algorithm is not sha256.
    DigestInvalid(&'static str),
    /// `SIZE_INVALID`: an upload would exceed the configured limit.
    TooLarge,
    /// `RANGE_INVALID`: a chunk does not continue where the upload stands.
    RangeInvalid { size: usize },
    /// `MANIFEST_INVALID`.
    ManifestInvalid(&'static str),
    /// `MANIFEST_BLOB_UNKNOWN`: a referenced blob or manifest is not in the repository.
    ManifestBlobUnknown(String),
}

/// The whole registry's content.
#[derive(Debug)]
pub(crate) struct Store {
    inner: Mutex<Inner>,
    max_blob_bytes: usize,
}

/// `sha256:<hex>` of `data`.
pub(crate) fn sha256(data: &[u8]) -> String {
    let mut ctx = Context::new(&SHA256);
    ctx.update(data);
    hex_digest(ctx)
}

fn hex_digest(ctx: Context) -> String {
    let d = ctx.finish();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in d.as_ref() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Only sha256 is supported (with lower-case hex, as it is computed).
fn check_algorithm(digest: &str) -> Result<(), StoreError> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
        {
            Ok(())
        }
        _ => Err(StoreError::DigestInvalid(
            "only sha256 digests are supported",
        )),
    }
}

impl Store {
    pub(crate) fn new(max_blob_bytes: usize) -> Self {
        Self {
            inner: Mutex::default(),
            max_blob_bytes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // every critical section leaves the maps consistent, so a poisoned lock is usable
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn max_blob_bytes(&self) -> usize {
        self.max_blob_bytes
    }

    /// Repository names in order, after `last`, at most `n`.
    pub(crate) fn catalog(&self, last: Option<&str>, n: usize) -> Vec<String> {
        let inner = self.lock();
        inner
            .repos
            .keys()
            .filter(|k| last.is_none_or(|l| k.as_str() > l))
            .take(n)
            .cloned()
            .collect()
    }

    /// The repository's tags after `last`, at most `n`; `None` if it does not exist.
    pub(crate) fn tags(&self, repo: &str, last: Option<&str>, n: usize) -> Option<Vec<String>> {
        let inner = self.lock();
        let r = inner.repos.get(repo)?;
        Some(
            r.tags
                .keys()
                .filter(|k| last.is_none_or(|l| k.as_str() > l))
                .take(n)
                .cloned()
                .collect(),
        )
    }

    /// A blob linked into `repo`.
    pub(crate) fn blob(&self, repo: &str, digest: &str) -> Option<Bytes> {
        let inner = self.lock();
        if !inner.repos.get(repo)?.blobs.contains(digest) {
            return None;
        }
        inner.blobs.get(digest).cloned()
    }

    /// Unlinks a blob from `repo` (dropping its bytes when no repository links it any more).
    pub(crate) fn delete_blob(&self, repo: &str, digest: &str) -> bool {
        let mut inner = self.lock();
        let removed = inner
            .repos
            .get_mut(repo)
            .is_some_and(|r| r.blobs.remove(digest));
        if removed && !inner.repos.values().any(|r| r.blobs.contains(digest)) {
            inner.blobs.remove(digest);
        }
        removed
    }

    /// Cross-repository mount: links a blob of `from` into `repo`; false if `from` does not
    /// have it (the client then uploads it).
    pub(crate) fn mount(&self, repo: &str, from: &str, digest: &str) -> bool {
        let mut inner = self.lock();
        let linked = inner
            .repos
            .get(from)
            .is_some_and(|r| r.blobs.contains(digest));
        if linked {
            inner
                .repos
                .entry(repo.to_owned())
                .or_default()
                .blobs
                .insert(digest.to_owned());
        }
        linked
    }

    /// Stores a whole blob after checking its digest (monolithic upload).
    pub(crate) fn put_blob(&self, repo: &str, digest: &str, data: Bytes) -> Result<(), StoreError> {
        check_algorithm(digest)?;
        if data.len() > self.max_blob_bytes {
            return Err(StoreError::TooLarge);
        }
        if sha256(&data) != digest {
            return Err(StoreError::DigestInvalid(
                "the content does not match the digest",
            ));
        }
        let mut inner = self.lock();
        inner.blobs.entry(digest.to_owned()).or_insert(data);
        inner
            .repos
            .entry(repo.to_owned())
            .or_default()
            .blobs
            .insert(digest.to_owned());
        Ok(())
    }

    /// Starts an upload session; returns its id (128 random bits, hex).
    pub(crate) fn start_upload(&self, repo: &str) -> String {
        let mut id = [0u8; 16];
        // aws-lc's generator does not fail on supported platforms; a zero id would still be
        // unique enough for the one session it names until the next one collides.
        let _ = aws_lc_rs::rand::fill(&mut id);
        let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        self.lock().uploads.insert(
            id.clone(),
            Upload {
                repo: repo.to_owned(),
                data: Vec::new(),
            },
        );
        id
    }

    /// The current size of an upload of `repo`.
    pub(crate) fn upload_size(&self, repo: &str, id: &str) -> Result<usize, StoreError> {
        let inner = self.lock();
        match inner.uploads.get(id) {
            Some(u) if u.repo == repo => Ok(u.data.len()),
            _ => Err(StoreError::UploadUnknown),
        }
    }

    /// Appends a chunk; `start` is the first offset of a `Content-Range`, if one was sent.
    /// Returns the new size.
    pub(crate) fn append(
        &self,
        repo: &str,
        id: &str,
        start: Option<usize>,
        chunk: &[u8],
    ) -> Result<usize, StoreError> {
        let mut inner = self.lock();
        let upload = match inner.uploads.get_mut(id) {
            Some(u) if u.repo == repo => u,
            _ => return Err(StoreError::UploadUnknown),
        };
        if start.is_some_and(|s| s != upload.data.len()) {
            return Err(StoreError::RangeInvalid {
                size: upload.data.len(),
            });
        }
        if upload.data.len() + chunk.len() > self.max_blob_bytes {
            return Err(StoreError::TooLarge);
        }
        upload.data.extend_from_slice(chunk);
        Ok(upload.data.len())
    }

    /// Finishes an upload with its last chunk: the content must match `digest`. The session
    /// is gone afterwards either way, except when the id is unknown.
    pub(crate) fn finish(
        &self,
        repo: &str,
        id: &str,
        digest: &str,
        last_chunk: &[u8],
    ) -> Result<(), StoreError> {
        let upload = {
            let mut inner = self.lock();
            match inner.uploads.get(id) {
                Some(u) if u.repo == repo => {}
                _ => return Err(StoreError::UploadUnknown),
            }
            inner.uploads.remove(id)
        };
        let mut data = upload.map(|u| u.data).unwrap_or_default();
        check_algorithm(digest)?;
        if data.len() + last_chunk.len() > self.max_blob_bytes {
            return Err(StoreError::TooLarge);
        }
        data.extend_from_slice(last_chunk);
        // hashing happens outside the lock
        self.put_blob(repo, digest, Bytes::from(data))
    }

    /// Cancels an upload.
    pub(crate) fn cancel(&self, repo: &str, id: &str) -> Result<(), StoreError> {
        let mut inner = self.lock();
        match inner.uploads.get(id) {
            Some(u) if u.repo == repo => {
                inner.uploads.remove(id);
                Ok(())
            }
            _ => Err(StoreError::UploadUnknown),
        }
    }

    /// A manifest by tag or digest, with its digest.
    pub(crate) fn manifest(&self, repo: &str, reference: &str) -> Option<(String, Manifest)> {
        let inner = self.lock();
        let r = inner.repos.get(repo)?;
        let digest = r.tags.get(reference).map_or(reference, String::as_str);
        r.manifests
            .get(digest)
            .map(|m| (digest.to_owned(), m.clone()))
    }

    /// Stores a manifest under its digest (and `reference` when that is a tag). Every blob an
    /// image manifest names, and every manifest an index names, must be in the repository.
    /// Returns the digest.
    pub(crate) fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: Bytes,
    ) -> Result<(String, Manifest), StoreError> {
        let digest = sha256(&body);
        if reference.contains(':') && reference != digest {
            return Err(StoreError::DigestInvalid(
                "the manifest does not match the digest",
            ));
        }
        let json: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|_| StoreError::ManifestInvalid("the manifest is not JSON"))?;
        if !json.is_object() {
            return Err(StoreError::ManifestInvalid(
                "the manifest is not a JSON object",
            ));
        }
        let digest_of = |v: &serde_json::Value| v["digest"].as_str().map(str::to_owned);
        let blobs: Vec<String> = json["config"]
            .as_object()
            .map(|_| &json["config"])
            .into_iter()
            .chain(json["layers"].as_array().into_iter().flatten())
            .map(|v| digest_of(v).ok_or(StoreError::ManifestInvalid("a descriptor has no digest")))
            .collect::<Result<_, _>>()?;
        let children: Vec<String> = json["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| digest_of(v).ok_or(StoreError::ManifestInvalid("a descriptor has no digest")))
            .collect::<Result<_, _>>()?;
        let manifest = Manifest {
            media_type: media_type.to_owned(),
            subject: json["subject"]["digest"].as_str().map(str::to_owned),
            artifact_type: json["artifactType"]
                .as_str()
                .or_else(|| json["config"]["mediaType"].as_str())
                .map(str::to_owned),
            annotations: json.get("annotations").cloned(),
            body,
        };
        let mut inner = self.lock();
        let r = inner.repos.entry(repo.to_owned()).or_default();
        if let Some(missing) = blobs.iter().find(|d| !r.blobs.contains(*d)) {
            return Err(StoreError::ManifestBlobUnknown(missing.clone()));
        }
        if let Some(missing) = children.iter().find(|d| !r.manifests.contains_key(*d)) {
            return Err(StoreError::ManifestBlobUnknown(missing.clone()));
        }
        r.manifests.insert(digest.clone(), manifest.clone());
        if !reference.contains(':') {
            r.tags.insert(reference.to_owned(), digest.clone());
        }
        Ok((digest, manifest))
    }

    /// Deletes a manifest by digest (and every tag pointing at it), or only a tag.
    pub(crate) fn delete_manifest(&self, repo: &str, reference: &str) -> bool {
        let mut inner = self.lock();
        let Some(r) = inner.repos.get_mut(repo) else {
            return false;
        };
        if reference.contains(':') {
            let found = r.manifests.remove(reference).is_some();
            r.tags.retain(|_, d| d != reference);
            found
        } else {
            r.tags.remove(reference).is_some()
        }
    }

    /// The manifests of `repo` whose subject is `digest`: (digest, manifest).
    pub(crate) fn referrers(&self, repo: &str, digest: &str) -> Vec<(String, Manifest)> {
        let inner = self.lock();
        let mut out: Vec<(String, Manifest)> = inner
            .repos
            .get(repo)
            .into_iter()
            .flat_map(|r| r.manifests.iter())
            .filter(|(_, m)| m.subject.as_deref() == Some(digest))
            .map(|(d, m)| (d.clone(), m.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_upload_checks_range_digest_and_size() {
        let store = Store::new(11);
        let id = store.start_upload("a");
        assert_eq!(store.append("a", &id, None, b"hello"), Ok(5));
        assert_eq!(
            store.append("a", &id, Some(3), b"x"),
            Err(StoreError::RangeInvalid { size: 5 })
        );
        assert_eq!(
            store.append("b", &id, None, b"x"),
            Err(StoreError::UploadUnknown)
        );
        assert_eq!(
            store.append("a", &id, Some(5), b"1234567"),
            Err(StoreError::TooLarge)
        );
        let digest = sha256(b"hello world");
        assert!(matches!(
            store.finish("a", &id, &sha256(b"other"), b" world"),
            Err(StoreError::DigestInvalid(_))
        ));
        // the failed finish consumed the session
        assert_eq!(store.upload_size("a", &id), Err(StoreError::UploadUnknown));
        let id = store.start_upload("a");
        store.append("a", &id, Some(0), b"hello").unwrap();
        store.finish("a", &id, &digest, b" world").unwrap();
        assert_eq!(store.blob("a", &digest).unwrap(), &b"hello world"[..]);
        assert!(store.blob("b", &digest).is_none(), "not linked into b");
        assert!(store.mount("b", "a", &digest));
        assert!(store.blob("b", &digest).is_some());
        assert!(!store.mount("c", "x", &digest));
        assert!(store.delete_blob("a", &digest));
        assert!(store.blob("b", &digest).is_some(), "b still links it");
        assert!(matches!(
            store.put_blob("a", "sha512:00", Bytes::new()),
            Err(StoreError::DigestInvalid(_))
        ));
    }

    #[test]
    fn manifests_tags_and_referrers() {
        let store = Store::new(1000);
        let cfg = Bytes::from_static(b"{}");
        let cfg_digest = sha256(&cfg);
        let m = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"x","digest":"{cfg_digest}","size":2}},"layers":[]}}"#
        );
        assert_eq!(
            store
                .put_manifest("r", "v1", "t", Bytes::from(m.clone()))
                .unwrap_err(),
            StoreError::ManifestBlobUnknown(cfg_digest.clone())
        );
        store.put_blob("r", &cfg_digest, cfg).unwrap();
        let (digest, _) = store.put_manifest("r", "v1", "t", Bytes::from(m)).unwrap();
        assert_eq!(store.manifest("r", "v1").unwrap().0, digest);
        assert_eq!(store.tags("r", None, 10).unwrap(), ["v1"]);
        let sig = format!(
            r#"{{"schemaVersion":2,"artifactType":"sig","config":{{"mediaType":"x","digest":"{cfg_digest}","size":2}},"layers":[],"subject":{{"digest":"{digest}"}}}}"#
        );
        let (sig_digest, _) = store
            .put_manifest("r", &sha256(sig.as_bytes()), "t", Bytes::from(sig))
            .unwrap();
        let refs = store.referrers("r", &digest);
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].0, sig_digest);
        assert_eq!(refs[0].1.artifact_type.as_deref(), Some("sig"));
        assert!(matches!(
            store.put_manifest("r", &sha256(b"x"), "t", Bytes::from_static(b"{}")),
            Err(StoreError::DigestInvalid(_))
        ));
        assert!(store.delete_manifest("r", &digest));
        assert!(store.manifest("r", "v1").is_none());
        assert!(store.tags("r", None, 10).unwrap().is_empty());
        assert_eq!(store.catalog(None, 10), ["r"]);
        assert!(store.catalog(Some("r"), 10).is_empty());
    }
}
