//! `warren ctl --offline`: the user, vhost and permission commands run against a stopped
//! broker's data directory (the store's directory lock refuses one in use). They change the
//! store and take effect at the next start; every other command needs the running broker.

use std::fmt::Write as _;
use std::path::Path;

use warren_broker::{Admin, AdminError};
use warren_store::SledStore;

use super::{CtlCommand, CtlError};
use crate::config::Config;

/// Runs `command` on the data directory of `config` and returns what to print.
pub fn run(config: &Config, command: &CtlCommand) -> Result<String, CtlError> {
    let dir = &config.data_dir;
    let store = open(dir, config)?;
    let mut admin = Admin::open(&store, &config.first_boot())?;
    let mut out = String::new();
    match command {
        CtlCommand::AddUser { user, password } => {
            admin.add_user(user, password, Vec::new())?;
            let _ = writeln!(out, "Adding user \"{user}\" ...");
        }
        CtlCommand::DeleteUser { user } => {
            admin.delete_user(user)?;
            let _ = writeln!(out, "Deleting user \"{user}\" ...");
        }
        CtlCommand::ChangePassword { user, password } => {
            admin.change_password(user, password)?;
            let _ = writeln!(out, "Changing password for user \"{user}\" ...");
        }
        CtlCommand::SetUserTags { user, tags } => {
            admin.set_user_tags(user, tags.clone())?;
            let _ = writeln!(
                out,
                "Setting tags for user \"{user}\" to [{}] ...",
                tags.join(", ")
            );
        }
        CtlCommand::ListUsers => {
            out.push_str("user\ttags\n");
            for u in admin.users() {
                let _ = writeln!(out, "{}\t[{}]", u.name, u.tags.join(", "));
            }
        }
        CtlCommand::AddVhost { vhost } => {
            admin.add_vhost(vhost)?;
            let _ = writeln!(out, "Adding vhost \"{vhost}\" ...");
        }
        CtlCommand::DeleteVhost { vhost } => {
            admin.delete_vhost(vhost)?;
            let _ = writeln!(out, "Deleting vhost \"{vhost}\" ...");
        }
        CtlCommand::ListVhosts { .. } => {
            out.push_str("name\n");
            for v in admin.vhosts() {
                let _ = writeln!(out, "{v}");
            }
        }
        CtlCommand::SetPermissions {
            vhost,
            user,
            configure,
            write,
            read,
        } => {
            admin.set_permissions(user, vhost, [configure, write, read].map(String::as_str))?;
            let _ = writeln!(
                out,
                "Setting permissions for user \"{user}\" in vhost \"{vhost}\" ..."
            );
        }
        CtlCommand::ClearPermissions { vhost, user } => {
            admin.clear_permissions(user, vhost)?;
            let _ = writeln!(
                out,
                "Clearing permissions for user \"{user}\" in vhost \"{vhost}\" ..."
            );
        }
        CtlCommand::ListPermissions { vhost } => {
            if !admin.vhosts().any(|v| v == vhost) {
                return Err(AdminError::NoSuchVhost(vhost.clone()).into());
            }
            out.push_str("user\tconfigure\twrite\tread\n");
            for u in admin.users() {
                if let Some(p) = u.vhosts.get(vhost) {
                    let [c, w, r] = p.sources();
                    let _ = writeln!(out, "{}\t{c}\t{w}\t{r}", u.name);
                }
            }
        }
        other => {
            return Err(CtlError::Validation(format!(
                "{} needs the running broker (drop --offline and --data-dir)",
                command_name(other)
            )));
        }
    }
    Ok(out)
}

fn open(dir: &Path, config: &Config) -> Result<SledStore, CtlError> {
    let failed = |source| CtlError::Open {
        dir: dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| failed(e.into()))?;
    SledStore::open_with(dir, &config.sled_options()).map_err(failed)
}

/// The command's rabbitmqctl name, for messages.
fn command_name(command: &CtlCommand) -> String {
    let debug = format!("{command:?}");
    let head = debug.split([' ', '{', '(']).next().unwrap_or("");
    let mut name = String::new();
    for (i, c) in head.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_lowercase());
    }
    name
}
