package sqlitestore

// echoWritersMigration keeps, with each remembered write, the recipe
// and chain of the run that made it, so that the run need not be a row
// of runs for an echo of the write to be told apart (an echo suppresses
// only the writer's recipe and those in its chain): a run that writes
// can then end in a page outcome like one that does not (outcomes.go).
// The rows remembered before keep NULL and are resolved through runs as
// they were. echo_writers is that resolution, the one place echoes are
// read through: a writer with no recipe is an imported write (state
// copied from another store, or its run no longer there), an echo for
// every recipe.
const echoWritersMigration = `ALTER TABLE echoes ADD COLUMN recipe TEXT;
ALTER TABLE echoes ADD COLUMN chain TEXT;
CREATE VIEW echo_writers AS
	SELECT x.connector, x.subject, x.fingerprint,
	       coalesce(x.recipe, w.recipe) AS recipe, coalesce(x.chain, w.chain, '') AS chain
	FROM echoes x LEFT JOIN runs w ON w.id = x.run;`
