//! `warren ctl`: `rabbitmqctl`'s user, vhost and permission commands, run against a stopped
//! broker's data directory (the store's directory lock refuses one in use).
//!
//! RabbitMQ's commands talk to the running node; Warren has no administration channel yet, so
//! these change the store and take effect at the next start.

use std::fmt::Write as _;
use std::path::Path;

use clap::Subcommand;
use warren_broker::{Admin, AdminError};
use warren_store::{SledStore, StoreError};

use crate::config::Config;

/// One `rabbitmqctl` command, named as `rabbitmqctl` names it.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum CtlCommand {
    /// Adds a user with no permissions.
    #[command(name = "add_user")]
    AddUser {
        /// The user's name.
        user: String,
        /// The user's password.
        password: String,
    },
    /// Deletes a user.
    #[command(name = "delete_user")]
    DeleteUser {
        /// The user's name.
        user: String,
    },
    /// Replaces a user's password.
    #[command(name = "change_password")]
    ChangePassword {
        /// The user's name.
        user: String,
        /// The new password.
        password: String,
    },
    /// Replaces a user's tags.
    #[command(name = "set_user_tags")]
    SetUserTags {
        /// The user's name.
        user: String,
        /// The tags (none clears them).
        tags: Vec<String>,
    },
    /// Lists users and their tags.
    #[command(name = "list_users")]
    ListUsers,
    /// Adds a virtual host.
    #[command(name = "add_vhost")]
    AddVhost {
        /// The vhost's name.
        vhost: String,
    },
    /// Deletes a virtual host with its exchanges, queues, messages and permissions.
    #[command(name = "delete_vhost")]
    DeleteVhost {
        /// The vhost's name.
        vhost: String,
    },
    /// Lists virtual hosts.
    #[command(name = "list_vhosts")]
    ListVhosts,
    /// Sets a user's configure, write and read expressions on a vhost (RabbitMQ's regexes).
    #[command(name = "set_permissions")]
    SetPermissions {
        /// The vhost.
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
        /// The user's name.
        user: String,
        /// Configure permission (a regular expression).
        configure: String,
        /// Write permission (a regular expression).
        write: String,
        /// Read permission (a regular expression).
        read: String,
    },
    /// Takes a vhost away from a user.
    #[command(name = "clear_permissions")]
    ClearPermissions {
        /// The vhost.
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
        /// The user's name.
        user: String,
    },
    /// Lists the users allowed on a vhost.
    #[command(name = "list_permissions")]
    ListPermissions {
        /// The vhost.
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
    },
}

/// Why a `warren ctl` command failed.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// The data directory could not be opened (in use, unknown format, I/O).
    #[error("cannot open the data directory {dir}: {source}")]
    Open {
        /// The directory.
        dir: String,
        /// Why.
        source: StoreError,
    },
    /// The command was refused or the store failed.
    #[error(transparent)]
    Admin(#[from] AdminError),
}

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
        CtlCommand::ListVhosts => {
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
