// Package identity finds the records that describe one person across
// sources (record linkage, also called patient matching or an EMPI).
//
// A Matcher takes Records (demographics of Patient resources from any
// connection or feed) and:
//
//  1. Blocks: only pairs that share at least one blocking key are compared
//     (birth date + NYSIIS code of the surname, surname prefix + given
//     initial + birth year, normalized phone, identifier by assigning
//     authority, normalized email, name-only keys for rare names, ...), so
//     the work grows with the number of records, not its square.
//  2. Compares each candidate pair field by field (Jaro–Winkler, one edit
//     and transpositions, a bundled nickname table, NYSIIS, birth dates with day/month swaps and one-digit
//     typos, USPS Publication 28 address normalization, phone, email,
//     identifiers by assigning authority, gender) into agreement levels.
//  3. Scores it with the Fellegi–Sunter model: the m and u probabilities of
//     every level are estimated by expectation–maximisation over the
//     candidate pairs of the strict blocking keys (no labels), u from
//     random pairs, and a pair's weight is the sum
//     of log2(m/u) over its fields, with a term-frequency adjustment for
//     exact name agreement (a shared rare surname says more than "Smith").
//     Every Score keeps its explanation (field, level, weight).
//  4. Decides link, review or no link with thresholds (the weight; a lower
//     one for pairs sharing a contact channel; the evidence without the
//     prior, Fellegi and Sunter's own threshold) and guards: a pair
//     whose given names or birth dates plainly disagree, whose suffixes
//     conflict (Jr./Sr.) or whose identifiers from one authority differ is
//     never linked automatically, whatever its total.
//  5. Clusters linked pairs into persons, strongest first, refusing a merge
//     when any pair across the two groups conflicts (same-authority
//     identifiers differ, a guard fails, the pair scores more than
//     Options.CrossSlack below the no-link threshold, or a person unlinked
//     them), so that a chain of weak links cannot join two people.
//
// Service.Update is what the serving gateway runs when Patients are
// stored: Add matches new and changed records against the stored persons
// with the last run's model; a full Run when there is none or the records
// have doubled since.
//
// Person ids (AssignIDs) are carried forward by overlap from the previous run
// and new ones are derived from a cluster's oldest member, so they are
// stable across re-runs and as records are added. Manual links and unlinks
// (Override) are kept with a reason and respected by later runs; Persist
// keeps both in store.Documents (kinds "identity-*").
//
// Generate builds synthetic ground truth: overlapping populations across
// several sources with realistic noise and hard negatives (twins, Jr./Sr.
// at one address, namesakes with the same birth date), deterministic by
// seed, with the true person of every record; Evaluate measures pairwise
// and cluster precision, recall and F1 against it.
//
// Nothing here logs or returns demographic values in errors: explanations
// name fields and agreement levels, never values.
package identity
