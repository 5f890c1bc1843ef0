// Package schemas embeds the JSON Schema of memberflow recipes, so that the
// loader, `memberflow schema` and editors all read the same document.
package schemas

import _ "embed"

// Recipe is schemas/recipe.schema.json (draft 2020-12). Its root describes
// a recipe; #/$defs/connectionsFile describes a shared connections file.
//
//go:embed recipe.schema.json
var Recipe []byte

// RecipeURL is the schema's $id.
const RecipeURL = "https://memberflow.dev/schemas/recipe.schema.json"
