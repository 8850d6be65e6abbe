// A handler in the shape of Lambda's Node.js samples: an ES module that
// imports the AWS SDK for JavaScript v3 without bundling it, its client made
// once at load time.
import { LambdaClient, ListFunctionsCommand } from "@aws-sdk/client-lambda";

const client = new LambdaClient({});

export const handler = async (event, context) => {
  const { Functions } = await client.send(new ListFunctionsCommand({ MaxItems: 50 }));
  const names = Functions.map((f) => f.FunctionName).sort();
  console.log(`found ${names.length} functions`);
  return { statusCode: 200, body: JSON.stringify({ functions: names }) };
};
