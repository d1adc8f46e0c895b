//! Never deliver as root (Postfix pipe(8) refuses `user=root` for the same reason).
//!
//! Started as root, the program switches to `--user NAME` (setgid, initgroups,
//! setuid) before it reads a byte of input, and checks that root cannot be regained.
//! Without `--user` it refuses. Started as any other user, `--user` is ignored: the
//! MTA has already chosen the user.

use std::ffi::CString;
use std::path::Path;

use nix::unistd::{Gid, Uid, User, chown, geteuid, getuid, initgroups, setgid, setuid};

use crate::error::Error;

/// Drops root privileges if we have them. With `create_spool`, a missing spool
/// directory is created first and given to the target user, so that a postmaster
/// running the program by hand as root gets a spool the MTA's user can write.
pub fn drop_root(
    user: Option<&str>,
    spool: Option<&Path>,
    create_spool: bool,
) -> Result<(), Error> {
    if !geteuid().is_root() {
        return Ok(());
    }
    let Some(name) = user else {
        return Err(Error::Privileges(
            "refusing to run as root: give --user NAME (the account that owns the spool)".into(),
        ));
    };
    let pw = User::from_name(name)
        .map_err(|e| Error::Privileges(format!("cannot look up user {name}: {e}")))?
        .ok_or_else(|| Error::Privileges(format!("no such user: {name}")))?;
    if pw.uid.is_root() {
        return Err(Error::Privileges(format!("--user {name} is root")));
    }
    if let (true, Some(dir)) = (create_spool, spool) {
        if crate::spool::create_dir(dir)? {
            chown(dir, Some(pw.uid), Some(pw.gid))
                .map_err(|e| Error::spool("chown", dir.display(), e))?;
        }
    }
    let cname =
        CString::new(name).map_err(|_| Error::Privileges("user name contains NUL".into()))?;
    setgid(pw.gid).map_err(|e| Error::Privileges(format!("setgid {}: {e}", pw.gid)))?;
    initgroups(&cname, pw.gid).map_err(|e| Error::Privileges(format!("initgroups {name}: {e}")))?;
    setuid(pw.uid).map_err(|e| Error::Privileges(format!("setuid {}: {e}", pw.uid)))?;
    // Paranoia, as in Postfix: the switch must be irreversible.
    if getuid().is_root()
        || geteuid().is_root()
        || setuid(Uid::from_raw(0)).is_ok()
        || setgid(Gid::from_raw(0)).is_ok()
    {
        return Err(Error::Privileges(
            "could not give up root privileges".into(),
        ));
    }
    Ok(())
}
