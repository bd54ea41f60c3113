//! Profiles: the other plausible 123s. Where readings of 123 disagree
//! (docs/123.md, open §11 and web §7), the emulator has a switch per reading; a profile is one choice of
//! every such switch. The write, fault and conformance suites run a row per profile (beside
//! their backend × policy rows), so each non-default reading is exercised in CI at least once.
//!
//! A profile is chosen per test thread (`use_profile`) and applied by `TestEnv` to every
//! emulator it starts, on top of the test's own config: a suite gets a profile row by setting it
//! at the start of the test, with no change to its scenarios.

use std::cell::Cell;

use pan123_emulator::{
    AuthKeyPath, ErrorStatus, Switches, TakenName, UploadCredentials, WebRateLimitStyle,
    WebSignatureFailure,
};

/// One reading of every point 123 leaves open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// The emulator's defaults (the first reading of each point).
    Default,
    /// The readings OpenList's driver implies, where they differ from the defaults.
    OpenListReading,
    /// The readings third-party SDKs' tests and public captures imply.
    SdkReading,
}

impl Profile {
    /// The profiles other than the default, each run as its own row.
    pub const OTHERS: [Profile; 2] = [Profile::OpenListReading, Profile::SdkReading];

    /// Sets this profile's switches (only the ones it changes).
    pub fn apply(self, switches: &mut Switches) {
        // Each point's non-default values are spread over the two profiles so that every value
        // runs at least once; the emulator README gives the evidence for each.
        match self {
            Profile::Default => {}
            Profile::OpenListReading => {
                // Web rate limits worded in messages with other codes (docs/123.md, web §7).
                switches.web_rate_limit_style = WebRateLimitStyle::Message;
                // OpenList's driver still implements static S3 credentials (docs/123.md, web §7).
                switches.upload_credentials = UploadCredentials::Static;
                // create on a taken name without `duplicate`: 123 keeps both (`name(1)`).
                switches.create_on_taken_name = TakenName::KeepBoth;
                // OpenList polls upload_complete through every error: 123 answers some.
                switches.complete_transient_errors = 3;
                // "秒传成功才会返回正确的 FileID，否则为 0": reuse without a fileID.
                switches.reuse_without_file_id = true;
            }
            Profile::SdkReading => {
                // Errors with a matching HTTP status (the Go SDKs read the status first).
                switches.error_status = ErrorStatus::Mirror;
                // The web API's rate limit as a plain HTTP 429 with Retry-After.
                switches.web_rate_limit_style = WebRateLimitStyle::Http429;
                // A refused signature as `{"status":0,"info":"签名错误…"}` (a public capture).
                switches.web_signature_failure = WebSignatureFailure::StatusInfo;
                // 123's official signing samples hash the path as written (docs/123.md, web §6).
                switches.auth_key_path = AuthKeyPath::Encoded;
                // create on a taken name without `duplicate`: the old file is replaced.
                switches.create_on_taken_name = TakenName::Replace;
                // An SDK's tests retry 20103 on link calls for files just uploaded.
                switches.verifying_after_upload = 2;
            }
        }
    }
}

thread_local! {
    static CURRENT: Cell<Profile> = const { Cell::new(Profile::Default) };
}

/// Makes `profile` the one every `TestEnv` started on this thread applies (a `#[tokio::test]`
/// runs on its own thread).
pub fn use_profile(profile: Profile) {
    CURRENT.with(|c| c.set(profile));
}

/// The profile of this thread's tests.
pub fn current_profile() -> Profile {
    CURRENT.with(|c| c.get())
}
