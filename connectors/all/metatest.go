//go:build memberflow_metatest

package all

// The meta-test's fourth connector (testdata/guestbook), built in only
// with -tags memberflow_metatest: adding it is this one import, in the
// one file that lists connectors.
import _ "github.com/memberflow/memberflow/connectors/all/testdata/guestbook"
