package engine

import (
	"context"
	"errors"
	"fmt"
)

// AddHistory fills what a Versions store knows of a run into d: the
// recipe version it last ran with and the attempts replays ended. A
// store that is not a Versions leaves d as is. The CLI's runs show and
// dlq show, and the console's run pages, read a run's history through it.
func AddHistory(ctx context.Context, store Inspector, d *RunDetail) error {
	s, ok := store.(Versions)
	if !ok {
		return nil
	}
	hash, err := s.RunVersion(ctx, d.ID)
	if err != nil {
		return fmt.Errorf("run %d: its recipe version: %w", d.ID, err)
	}
	if hash != "" {
		if d.Version, err = s.LoadVersion(ctx, d.Recipe, hash); errors.Is(err, ErrNoVersion) {
			d.Version, err = &RecipeVersion{Recipe: d.Recipe, Hash: hash}, nil
		}
		if err != nil {
			return fmt.Errorf("run %d: its recipe version: %w", d.ID, err)
		}
	}
	if d.PastAttempts, err = s.Attempts(ctx, d.ID); err != nil {
		return fmt.Errorf("run %d: its earlier attempts: %w", d.ID, err)
	}
	return nil
}
