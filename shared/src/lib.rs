//! The Coventry contract shared by coventryd, pbxctl and pbx-tui.
