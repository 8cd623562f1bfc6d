package main

import (
	"context"
	"errors"
	"syscall"
	"testing"
)

func TestInterruptCodeIsTheSignals(t *testing.T) {
	for sig, want := range map[syscall.Signal]int{syscall.SIGINT: 130, syscall.SIGTERM: 143} {
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(signalCause{sig})
		if got := interruptCode(ctx); got != want {
			t.Errorf("%s: exit %d, want %d", sig, got, want)
		}
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New("not a signal"))
	if got := interruptCode(ctx); got != 130 {
		t.Errorf("cancelled without a signal: exit %d, want 130", got)
	}
}
