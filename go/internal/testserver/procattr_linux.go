package testserver

import (
	"os/exec"
	"syscall"
)

// dieWithTest kills the server when the test binary ends without its cleanups (a test that
// timed out panics), so no orphaned server outlives the run.
func dieWithTest(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
