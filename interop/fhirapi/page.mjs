// Pages through a search on ehrgate's FHIR API with fhir-kit-client (a
// third-party FHIR client) and prints what it saw as JSON on stdout:
//   node page.mjs BASE_URL TYPE QUERY   (the bearer token in EHRGATE_TOKEN)
import { Client } from 'fhir-kit-client';

async function main() {
  const [baseUrl, resourceType, query] = process.argv.slice(2);
  const client = new Client({ baseUrl, bearerToken: process.env.EHRGATE_TOKEN });
  const searchParams = Object.fromEntries(new URLSearchParams(query));
  let bundle = await client.search({ resourceType, searchParams });
  const ids = [];
  let pages = 0;
  for (;;) {
    pages++;
    for (const e of bundle.entry || []) ids.push(`${e.resource.resourceType}/${e.resource.id}`);
    if (!(bundle.link || []).some((l) => l.relation === 'next')) break;
    bundle = await client.nextPage({ bundle });
  }
  let refused = null;
  try {
    await new Client({ baseUrl, bearerToken: 'forged' }).read({ resourceType: 'Patient', id: 'x' });
  } catch (err) {
    refused = err.response ? err.response.status : String(err);
  }
  process.stdout.write(JSON.stringify({ pages, ids, refused }));
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack || err) + '\n');
  process.exit(1);
});
