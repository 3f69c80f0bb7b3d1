/// The symbolic name of an errno value (`EINVAL`), or `E<number>`.
pub fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::E2BIG => "E2BIG",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::ENOSYS => "ENOSYS",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ENOTCONN => "ENOTCONN",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ENXIO => "ENXIO",
        libc::EFAULT => "EFAULT",
        _ => return format!("E{errno}"),
    };
    name.to_string()
}

/// Errnos that say "could not decide right now" rather than "no".
pub(crate) fn is_transient(errno: i32) -> bool {
    matches!(
        errno,
        libc::EACCES
            | libc::EPERM
            | libc::EINTR
            | libc::EAGAIN
            | libc::ENOMEM
            | libc::EBUSY
            | libc::ENOTCONN
            | libc::ETIMEDOUT
    )
}
