// Validates an OpenAPI document against the OpenAPI 3 schema and its own
// references, as a standard validator does:
//   node validate-openapi.js openapi.json
// Exit 0 when valid; else the validator's message and exit 1.
const SwaggerParser = require("@apidevtools/swagger-parser");

SwaggerParser.validate(process.argv[2])
  .then((api) => {
    console.log(`valid: ${api.info.title} ${api.info.version}, ` +
                `${Object.keys(api.paths).length} paths`);
  })
  .catch((error) => {
    console.error(`invalid: ${error.message}`);
    process.exit(1);
  });
