//! The one error type. Its discriminants are the `RSMERR_*` values of
//! `<sys/rsm/rsm_common.h>` (spec 3.2), so turning an error into the C return
//! value is a cast, and no other integer can ever reach a caller.

use std::fmt;

/// Every error librsm can return. `RSM_SUCCESS` (0) is `Ok(())`.
#[allow(missing_docs)] // the names are the documentation: spec 3.2.1 and 3.2.2
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum RsmError {
    BadLibraryVersion = 1,
    BadTopologyPtr = 2,
    BadCtlrHndl = 3,
    CtlrNotPresent = 4,
    BadSegHndl = 5,
    SegAlreadyPublished = 6,
    SegNotPublished = 7,
    SegNotPublishedToNode = 8,
    SegAlreadyMapped = 9,
    SegStillMapped = 10,
    SegNotMapped = 11,
    NotCreator = 12,
    BadBarrierPtr = 13,
    BadSgio = 14,
    BadLocalmemHndl = 15,
    BadAddr = 16,
    BadMemAlignment = 17,
    BadOffset = 18,
    MisalignedOffset = 19,
    BadLength = 20,
    BadAcl = 21,
    BadSegid = 22,
    ReservedSegid = 23,
    SegidInUse = 24,
    BadMode = 25,
    BadPerms = 26,
    PermDenied = 27,
    LocksNotSupported = 28,
    LocksNotEnabled = 29,
    RebindNotAllowed = 30,
    InsufficientResources = 31,
    InsufficientMem = 32,
    MapFailed = 33,
    PollfdInUse = 34,
    BarrierUninitialized = 35,
    BarrierOpenFailed = 36,
    BarrierNotOpened = 37,
    BarrierFailure = 38,
    RemoteNodeUnreachable = 39,
    ConnAborted = 40,
    Interrupted = 41,
    Timeout = 42,
    BadAppid = 43,
    BadConf = 44,
    SegNotConnected = 45,
    InternalError = 100,
    BadDriverVersion = 101,
    UnsupportedVersion = 102,
    DriverNameInUse = 103,
    DriverNotRegistered = 104,
    DriverThreadRunning = 105,
    NeedThreadInit = 106,
    ThreadNotInited = 107,
    CtlrsRegistered = 108,
    CtlrNotRegistered = 109,
    CtlrAlreadyRegistered = 110,
    CtlrInUse = 111,
    NameTooLong = 112,
    SegPublished = 113,
    SegNotPublishedToRsmAddr = 114,
    SegInUse = 115,
    BadSendqHndl = 116,
    BadArgsErrors = 117,
    BadMstype = 118,
    NoBackingMem = 119,
    NotMem = 120,
    MemAlreadyBound = 121,
    MemNotBound = 122,
    HandlerNotRegistered = 123,
    NoHandler = 124,
    UnbindRebindNotAllowed = 125,
    CallbacksNotSupported = 126,
    UnsupportedOperation = 127,
    RsmAddrUnreachable = 128,
    UnknownRsmAddr = 129,
    BadBarrierHndl = 130,
    CommErrMaybeDelivered = 131,
    CommErrNotDelivered = 132,
    QueueFenceUp = 133,
    QueueFull = 134,
}

/// What every fallible librsm operation returns.
pub type RsmResult<T> = Result<T, RsmError>;

impl RsmError {
    /// The C return value.
    pub const fn code(self) -> i32 {
        self as i32
    }

    /// The `RSMERR_*` name, for traces and messages.
    pub fn name(self) -> &'static str {
        use RsmError::*;
        match self {
            BadLibraryVersion => "RSMERR_BAD_LIBRARY_VERSION",
            BadTopologyPtr => "RSMERR_BAD_TOPOLOGY_PTR",
            BadCtlrHndl => "RSMERR_BAD_CTLR_HNDL",
            CtlrNotPresent => "RSMERR_CTLR_NOT_PRESENT",
            BadSegHndl => "RSMERR_BAD_SEG_HNDL",
            SegAlreadyPublished => "RSMERR_SEG_ALREADY_PUBLISHED",
            SegNotPublished => "RSMERR_SEG_NOT_PUBLISHED",
            SegNotPublishedToNode => "RSMERR_SEG_NOT_PUBLISHED_TO_NODE",
            SegAlreadyMapped => "RSMERR_SEG_ALREADY_MAPPED",
            SegStillMapped => "RSMERR_SEG_STILL_MAPPED",
            SegNotMapped => "RSMERR_SEG_NOT_MAPPED",
            NotCreator => "RSMERR_NOT_CREATOR",
            BadBarrierPtr => "RSMERR_BAD_BARRIER_PTR",
            BadSgio => "RSMERR_BAD_SGIO",
            BadLocalmemHndl => "RSMERR_BAD_LOCALMEM_HNDL",
            BadAddr => "RSMERR_BAD_ADDR",
            BadMemAlignment => "RSMERR_BAD_MEM_ALIGNMENT",
            BadOffset => "RSMERR_BAD_OFFSET",
            MisalignedOffset => "RSMERR_MISALIGNED_OFFSET",
            BadLength => "RSMERR_BAD_LENGTH",
            BadAcl => "RSMERR_BAD_ACL",
            BadSegid => "RSMERR_BAD_SEGID",
            ReservedSegid => "RSMERR_RESERVED_SEGID",
            SegidInUse => "RSMERR_SEGID_IN_USE",
            BadMode => "RSMERR_BAD_MODE",
            BadPerms => "RSMERR_BAD_PERMS",
            PermDenied => "RSMERR_PERM_DENIED",
            LocksNotSupported => "RSMERR_LOCKS_NOT_SUPPORTED",
            LocksNotEnabled => "RSMERR_LOCKS_NOT_ENABLED",
            RebindNotAllowed => "RSMERR_REBIND_NOT_ALLOWED",
            InsufficientResources => "RSMERR_INSUFFICIENT_RESOURCES",
            InsufficientMem => "RSMERR_INSUFFICIENT_MEM",
            MapFailed => "RSMERR_MAP_FAILED",
            PollfdInUse => "RSMERR_POLLFD_IN_USE",
            BarrierUninitialized => "RSMERR_BARRIER_UNINITIALIZED",
            BarrierOpenFailed => "RSMERR_BARRIER_OPEN_FAILED",
            BarrierNotOpened => "RSMERR_BARRIER_NOT_OPENED",
            BarrierFailure => "RSMERR_BARRIER_FAILURE",
            RemoteNodeUnreachable => "RSMERR_REMOTE_NODE_UNREACHABLE",
            ConnAborted => "RSMERR_CONN_ABORTED",
            Interrupted => "RSMERR_INTERRUPTED",
            Timeout => "RSMERR_TIMEOUT",
            BadAppid => "RSMERR_BAD_APPID",
            BadConf => "RSMERR_BAD_CONF",
            SegNotConnected => "RSMERR_SEG_NOT_CONNECTED",
            InternalError => "RSMERR_INTERNAL_ERROR",
            BadDriverVersion => "RSMERR_BAD_DRIVER_VERSION",
            UnsupportedVersion => "RSMERR_UNSUPPORTED_VERSION",
            DriverNameInUse => "RSMERR_DRIVER_NAME_IN_USE",
            DriverNotRegistered => "RSMERR_DRIVER_NOT_REGISTERED",
            DriverThreadRunning => "RSMERR_DRIVER_THREAD_RUNNING",
            NeedThreadInit => "RSMERR_NEED_THREAD_INIT",
            ThreadNotInited => "RSMERR_THREAD_NOT_INITED",
            CtlrsRegistered => "RSMERR_CTLRS_REGISTERED",
            CtlrNotRegistered => "RSMERR_CTLR_NOT_REGISTERED",
            CtlrAlreadyRegistered => "RSMERR_CTLR_ALREADY_REGISTERED",
            CtlrInUse => "RSMERR_CTLR_IN_USE",
            NameTooLong => "RSMERR_NAME_TOO_LONG",
            SegPublished => "RSMERR_SEG_PUBLISHED",
            SegNotPublishedToRsmAddr => "RSMERR_SEG_NOT_PUBLISHED_TO_RSM_ADDR",
            SegInUse => "RSMERR_SEG_IN_USE",
            BadSendqHndl => "RSMERR_BAD_SENDQ_HNDL",
            BadArgsErrors => "RSMERR_BAD_ARGS_ERRORS",
            BadMstype => "RSMERR_BAD_MSTYPE",
            NoBackingMem => "RSMERR_NO_BACKING_MEM",
            NotMem => "RSMERR_NOT_MEM",
            MemAlreadyBound => "RSMERR_MEM_ALREADY_BOUND",
            MemNotBound => "RSMERR_MEM_NOT_BOUND",
            HandlerNotRegistered => "RSMERR_HANDLER_NOT_REGISTERED",
            NoHandler => "RSMERR_NO_HANDLER",
            UnbindRebindNotAllowed => "RSMERR_UNBIND_REBIND_NOT_ALLOWED",
            CallbacksNotSupported => "RSMERR_CALLBACKS_NOT_SUPPORTED",
            UnsupportedOperation => "RSMERR_UNSUPPORTED_OPERATION",
            RsmAddrUnreachable => "RSMERR_RSM_ADDR_UNREACHABLE",
            UnknownRsmAddr => "RSMERR_UNKNOWN_RSM_ADDR",
            BadBarrierHndl => "RSMERR_BAD_BARRIER_HNDL",
            CommErrMaybeDelivered => "RSMERR_COMM_ERR_MAYBE_DELIVERED",
            CommErrNotDelivered => "RSMERR_COMM_ERR_NOT_DELIVERED",
            QueueFenceUp => "RSMERR_QUEUE_FENCE_UP",
            QueueFull => "RSMERR_QUEUE_FULL",
        }
    }

    /// The RSMERR for an `errno` from a system call that allocates: the two
    /// resource errors are distinguished as Solaris did, anything else is a
    /// fault of ours and is reported as such rather than leaked (spec 3.2.3).
    pub fn from_alloc_errno(errno: i32) -> Self {
        match errno {
            libc::ENOMEM => RsmError::InsufficientMem,
            libc::EMFILE | libc::ENFILE | libc::EAGAIN | libc::ENOBUFS => {
                RsmError::InsufficientResources
            }
            libc::EFAULT => RsmError::BadAddr,
            libc::EINTR => RsmError::Interrupted,
            _ => RsmError::InternalError,
        }
    }
}

/// Code to name, for the trace of a C return value.
pub fn name_of_code(code: i32) -> &'static str {
    if code == 0 {
        return "RSM_SUCCESS";
    }
    ALL.iter()
        .find(|e| e.code() == code)
        .map_or("?", |e| e.name())
}

/// Every variant, for lookups and tests.
pub const ALL: [RsmError; 80] = {
    use RsmError::*;
    [
        BadLibraryVersion,
        BadTopologyPtr,
        BadCtlrHndl,
        CtlrNotPresent,
        BadSegHndl,
        SegAlreadyPublished,
        SegNotPublished,
        SegNotPublishedToNode,
        SegAlreadyMapped,
        SegStillMapped,
        SegNotMapped,
        NotCreator,
        BadBarrierPtr,
        BadSgio,
        BadLocalmemHndl,
        BadAddr,
        BadMemAlignment,
        BadOffset,
        MisalignedOffset,
        BadLength,
        BadAcl,
        BadSegid,
        ReservedSegid,
        SegidInUse,
        BadMode,
        BadPerms,
        PermDenied,
        LocksNotSupported,
        LocksNotEnabled,
        RebindNotAllowed,
        InsufficientResources,
        InsufficientMem,
        MapFailed,
        PollfdInUse,
        BarrierUninitialized,
        BarrierOpenFailed,
        BarrierNotOpened,
        BarrierFailure,
        RemoteNodeUnreachable,
        ConnAborted,
        Interrupted,
        Timeout,
        BadAppid,
        BadConf,
        SegNotConnected,
        InternalError,
        BadDriverVersion,
        UnsupportedVersion,
        DriverNameInUse,
        DriverNotRegistered,
        DriverThreadRunning,
        NeedThreadInit,
        ThreadNotInited,
        CtlrsRegistered,
        CtlrNotRegistered,
        CtlrAlreadyRegistered,
        CtlrInUse,
        NameTooLong,
        SegPublished,
        SegNotPublishedToRsmAddr,
        SegInUse,
        BadSendqHndl,
        BadArgsErrors,
        BadMstype,
        NoBackingMem,
        NotMem,
        MemAlreadyBound,
        MemNotBound,
        HandlerNotRegistered,
        NoHandler,
        UnbindRebindNotAllowed,
        CallbacksNotSupported,
        UnsupportedOperation,
        RsmAddrUnreachable,
        UnknownRsmAddr,
        BadBarrierHndl,
        CommErrMaybeDelivered,
        CommErrNotDelivered,
        QueueFenceUp,
        QueueFull,
    ]
};

impl fmt::Display for RsmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

impl std::error::Error for RsmError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_named_after_themselves() {
        let mut seen = std::collections::HashSet::new();
        for e in ALL {
            assert!(seen.insert(e.code()), "{e} twice");
            assert_eq!(name_of_code(e.code()), e.name());
            assert!(e.name().starts_with("RSMERR_"));
        }
        assert_eq!(RsmError::BadCtlrHndl.code(), 3);
        assert_eq!(RsmError::SegNotConnected.code(), 45);
        assert_eq!(RsmError::InternalError.code(), 100);
        assert_eq!(RsmError::QueueFull.code(), 134);
        assert_eq!(name_of_code(0), "RSM_SUCCESS");
        assert_eq!(name_of_code(77), "?");
    }
}
