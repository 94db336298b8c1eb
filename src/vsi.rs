//! GDAL's virtual file systems: the name GDAL opens a local path or an
//! object's URL by (`/vsis3/bucket/key`, ..., with the bucket's settings
//! given to GDAL), and a plain handle to read bytes through them.

use std::ffi::CString;

use crate::store;

/// The name GDAL opens `path` by: a local path as it is; an object's URL
/// under GDAL's network file systems (`/vsis3/bucket/key`, ...), with the
/// bucket's settings (endpoint, credentials, requester pays) given to GDAL
/// as options of that prefix the first time.
pub fn gdal_name(path: &str) -> String {
    if !store::is_remote(path) {
        return path.to_string();
    }
    let Ok(url) = store::ObjectUrl::parse(path) else {
        return path.to_string();
    };
    configure_network_reads();
    if let Some((prefix, options)) = store::gdal_setup(&url) {
        for (key, value) in options {
            set_path_option(&prefix, &key, &value);
        }
        // The folder listing GDAL would make for side-car files is a
        // request per open that sceneql never uses.
        set_path_option(&prefix, "GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR");
    }
    url.gdal_path()
}

fn set_path_option(prefix: &str, key: &str, value: &str) {
    let (Ok(p), Ok(k), Ok(v)) = (CString::new(prefix), CString::new(key), CString::new(value))
    else {
        return;
    };
    // SAFETY: three NUL-terminated strings; GDAL copies them.
    unsafe { gdal_sys::VSISetPathSpecificOption(p.as_ptr(), k.as_ptr(), v.as_ptr()) };
}

/// GDAL's retries of network reads (5xx, 429, timeouts), once per process:
/// bounded like the object stores' ([`store::RETRY_TIMEOUT`]).
fn configure_network_reads() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for (k, v) in [
            ("GDAL_HTTP_MAX_RETRY", "5"),
            ("GDAL_HTTP_RETRY_DELAY", "0.2"),
            ("GDAL_HTTP_CONNECTTIMEOUT", "5"),
            ("GDAL_HTTP_TIMEOUT", "60"),
        ] {
            if gdal::config::get_config_option(k, "")
                .unwrap_or_default()
                .is_empty()
            {
                let _ = gdal::config::set_config_option(k, v);
            }
        }
    });
}

/// A file opened through GDAL's virtual file layer.
pub(crate) struct VsiFile(*mut gdal_sys::VSILFILE);

// SAFETY: a VSI handle is used by one thread at a time (`&mut self`), which
// GDAL allows; it is not shared.
unsafe impl Send for VsiFile {}

impl VsiFile {
    pub(crate) fn open(path: &str) -> Option<Self> {
        let c = CString::new(gdal_name(path)).ok()?;
        // SAFETY: both arguments are NUL-terminated strings.
        let fp = unsafe { gdal_sys::VSIFOpenL(c.as_ptr(), c"rb".as_ptr()) };
        (!fp.is_null()).then_some(VsiFile(fp))
    }

    /// Fill `buf` from `offset`; false on a short read or error.
    pub(crate) fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> bool {
        // SAFETY: the handle is open; `buf` holds `buf.len()` writable bytes.
        unsafe {
            gdal_sys::VSIFSeekL(self.0, offset, 0) == 0
                && gdal_sys::VSIFReadL(buf.as_mut_ptr().cast(), 1, buf.len(), self.0) == buf.len()
        }
    }
}

impl Drop for VsiFile {
    fn drop(&mut self) {
        // SAFETY: the handle is open and closed only here.
        unsafe {
            gdal_sys::VSIFCloseL(self.0);
        }
    }
}
