/// Whether a route needs a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum AuthRequirement {
    /// A valid credential is required (default).
    #[default]
    Required,
    /// Public: credentials are verified if present, never required; the request is still logged.
    None,
}

/// Whether App+User callers must show MFA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum MfaRequirement {
    /// MFA is required (default).
    #[default]
    Required,
    /// MFA is recorded but not required.
    Optional,
}

/// Whether App-only callers may use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum AppOnlyAccess {
    /// App-only tokens are allowed (default; they are left out of the MFA metric).
    #[default]
    Allow,
    /// App-only tokens get 403 `insufficient_scope`.
    Deny,
}

/// Whether refusals are enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum Mode {
    /// Refusals are answered (default).
    #[default]
    Enforce,
    /// Decide and log as if enforced, but forward every request.
    ReportOnly,
}

/// The policy half of a route's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RouteRule {
    /// `auth`.
    pub auth: AuthRequirement,
    /// `mfa`.
    pub mfa: MfaRequirement,
    /// `app_only`.
    pub app_only: AppOnlyAccess,
    /// `mode`.
    pub mode: Mode,
}
