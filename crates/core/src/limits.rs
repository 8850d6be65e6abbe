//! Lambda's size limits, defined once. Every surface that enforces one of
//! these reads it from here.

const MIB: usize = 1024 * 1024;

/// Synchronous invocation payload and response (Lambda: 6 MB, counted as
/// 6,291,456 bytes); also the largest function-URL request body.
pub const SYNC_PAYLOAD_BYTES: usize = 6 * MIB;

/// Asynchronous (`Event`) invocation payload. Lambda raised it from 256 KB
/// to 1 MB in October 2025 ("For synchronous invocations, the maximum payload
/// size is 6 MB. For asynchronous invocations, the maximum payload size is
/// 1 MB", Lambda API reference, Invoke).
pub const ASYNC_PAYLOAD_BYTES: usize = MIB;

/// The asynchronous limit before October 2025, for callers that still
/// assume it (documentation and tests of the old boundary).
pub const LEGACY_ASYNC_PAYLOAD_BYTES: usize = 256 * 1024;

/// A zip sent in a Lambda API request body (Lambda: 50 MB, zipped).
pub const DIRECT_ZIP_BYTES: usize = 50 * MIB;

/// A code package uploaded through the native API, zipped.
pub const UPLOAD_ZIP_BYTES: usize = 250 * MIB;

/// A code package unpacked (Lambda: 250 MB).
pub const UNPACKED_CODE_BYTES: u64 = 250 * MIB as u64;

/// The largest control-API body read before its signature can be checked
/// (SigV4 without `x-amz-content-sha256`, as botocore signs Lambda calls):
/// a 50 MB zip, base64 in JSON.
pub const UNVERIFIED_BODY_BYTES: usize = 70 * MIB;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_figures() {
        assert_eq!(SYNC_PAYLOAD_BYTES, 6_291_456);
        assert_eq!(ASYNC_PAYLOAD_BYTES, 1_048_576);
        assert_eq!(LEGACY_ASYNC_PAYLOAD_BYTES, 262_144);
        // base64 of the largest direct zip fits the unverified bound.
        assert!(DIRECT_ZIP_BYTES.div_ceil(3) * 4 < UNVERIFIED_BODY_BYTES);
    }
}
