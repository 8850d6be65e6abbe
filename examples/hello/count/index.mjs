// Counts the words and characters of the text posted as JSON {"text": "..."}
// or as plain text.
export const handler = async (event) => {
  let body = event.body ?? "";
  if (event.isBase64Encoded) body = Buffer.from(body, "base64").toString("utf8");

  let text = body;
  try {
    const parsed = JSON.parse(body);
    if (typeof parsed?.text === "string") text = parsed.text;
  } catch {
    // not JSON: count the raw body
  }

  const words = text.split(/\s+/).filter(Boolean).length;
  return { words, characters: [...text].length };
};
