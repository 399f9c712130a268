//! Telling the service manager how the switch is (sd_notify(3)): ready once it
//! listens, alive from its main loop at half the watchdog interval, reloading and
//! stopping. Outside systemd (no `NOTIFY_SOCKET`) it does nothing.

use sd_notify::NotifyState;

/// The switch's line to systemd.
#[derive(Debug)]
pub struct ServiceManager {
    /// Pet the watchdog this often (half of `WATCHDOG_USEC`), ms; none when off.
    watchdog_every_ms: Option<u64>,
    last_pet_ms: u64,
}

impl ServiceManager {
    /// Read the watchdog settings systemd passed, if any.
    pub fn from_env() -> ServiceManager {
        let mut usec = 0u64;
        let on = sd_notify::watchdog_enabled(false, &mut usec);
        ServiceManager {
            watchdog_every_ms: (on && usec > 0).then(|| (usec / 2000).max(1)),
            last_pet_ms: 0,
        }
    }

    fn tell(&self, states: &[NotifyState<'_>]) {
        if let Err(e) = sd_notify::notify(false, states) {
            log::debug!("sd_notify: {e}");
        }
    }

    /// The switch listens: startup is over.
    pub fn ready(&mut self, status: &str, now_ms: u64) {
        self.tell(&[NotifyState::Ready, NotifyState::Status(status)]);
        self.last_pet_ms = now_ms;
    }

    /// A turn of the main loop at `now_ms`: the watchdog hears from it in time.
    pub fn alive(&mut self, now_ms: u64) {
        let Some(every) = self.watchdog_every_ms else {
            return;
        };
        if now_ms.saturating_sub(self.last_pet_ms) >= every {
            self.last_pet_ms = now_ms;
            self.tell(&[NotifyState::Watchdog]);
        }
    }

    /// A reload starts.
    pub fn reloading(&self) {
        self.tell(&[NotifyState::Reloading]);
    }

    /// A reload is over (applied or refused): running again.
    pub fn reloaded(&self, status: &str) {
        self.tell(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// The switch stops.
    pub fn stopping(&self) {
        self.tell(&[NotifyState::Stopping]);
    }
}
