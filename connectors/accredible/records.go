package accredible

import "github.com/memberflow/memberflow/connectors"

// declareRecords says which domain records this API holds (credentials),
// how to read those of the recipes' group, and what the operations that
// reconcile binds to do with them.
func declareRecords(s *connectors.Spec) {
	s.Records = []*connectors.RecordSpec{{
		Kind: connectors.KindCredential, Trigger: "credential_created", Scope: "group_id",
		Fields: map[string]string{
			connectors.FieldID: "id", connectors.FieldMember: "recipient.id", connectors.FieldExpires: "expired_on",
			connectors.FieldGroup: "group_id", connectors.FieldChanged: "updated_at|created_at",
		},
	}}
	roles := map[string]*connectors.Role{
		"credential_created": {Kind: connectors.KindCredential, Verb: "created"},
		"credential_changed": {Kind: connectors.KindCredential, Verb: "changed"},
		"upsert_credential":  {Kind: connectors.KindCredential, Verb: "issue"},
		"expire_credential":  {Kind: connectors.KindCredential, Verb: "expire"},
	}
	s.SetRoles(roles)
}
