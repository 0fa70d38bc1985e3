//! safeshift-torch (work in progress).
