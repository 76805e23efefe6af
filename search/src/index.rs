//! The Tantivy side: one document per shared file, to find files by the
//! words of their names or by their URNs.
//!
//! The index is derived data. The catalog, saved as the hash cache, is the
//! truth, and the index can always be rebuilt from it, so a schema change or
//! a damaged index costs a rebuild, never a rehash. A document holds the
//! file's index number (to find it in the catalog), the tokens of its name
//! and of its signature's release metadata, and its two URNs; nothing is kept in Tantivy's document store, since
//! results are read from the catalog.
//!
//! Each commit carries a payload naming the schema version and the catalog
//! generation it reflects. On open, an index with another payload (an older
//! schema, or a crash between saving the cache and committing) is rebuilt.

use std::fs;
use std::path::Path;

use tantivy::collector::TopDocs;
use tantivy::columnar::Column;
use tantivy::indexer::IndexWriterOptions;
use tantivy::query::{BooleanQuery, Query as TantivyQuery, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST, INDEXED, STRING};
use tantivy::tokenizer::{AsciiFoldingFilter, LowerCaser, SimpleTokenizer, TextAnalyzer};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, TantivyError, Term};

use crate::{Error, Query, SharedFile, MAX_QUERY_URNS, MAX_QUERY_WORDS, MAX_RESULTS};

/// Whether every file of `index` is as it was written (checksums) and it
/// holds one document per file of the catalog: a damaged or half-written
/// index (a second servent on the same data directory, a disk error) is
/// rebuilt rather than trusted.
fn is_whole(index: &Index, files: usize) -> bool {
    let intact = index.validate_checksum().is_ok_and(|damaged| damaged.is_empty());
    let reader = index.reader_builder().reload_policy(tantivy::ReloadPolicy::Manual).try_into();
    intact && reader.is_ok_and(|reader: tantivy::IndexReader| reader.searcher().num_docs() == files as u64)
}

/// Bumped whenever the schema or the tokenizer changes, so that indexes
/// built the old way are rebuilt on open.
const SCHEMA_VERSION: u32 = 2;
/// The name under which [`analyzer`] is registered with Tantivy.
const NAME_TOKENIZER: &str = "gnutella_name";
const INDEX_FIELD: &str = "index";

/// Splits text into the words that keyword queries match on: lowercase,
/// accents folded to ASCII, split on anything that is not a letter or digit,
/// empty words dropped. File names are indexed with this very tokenizer.
///
/// ```
/// assert_eq!(search::keywords("SEBLINUX-base-1.0.tar"), ["seblinux", "base", "1", "0", "tar"]);
/// assert_eq!(search::keywords("Été_2024"), ["ete", "2024"]);
/// ```
pub fn keywords(text: &str) -> Vec<String> {
    let mut analyzer = analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut words = Vec::new();
    stream.process(&mut |token| {
        if !token.text.is_empty() {
            words.push(token.text.clone());
        }
    });
    words
}

fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default()).filter(LowerCaser).filter(AsciiFoldingFilter).build()
}

fn schema() -> Schema {
    let mut builder = Schema::builder();
    builder.add_u64_field(INDEX_FIELD, INDEXED | FAST);
    // Frequencies (for BM25) but no positions: Gnutella queries are word sets, not phrases.
    let name_indexing =
        TextFieldIndexing::default().set_tokenizer(NAME_TOKENIZER).set_index_option(IndexRecordOption::WithFreqs);
    builder.add_text_field("name", TextOptions::default().set_indexing_options(name_indexing));
    builder.add_text_field("urn", STRING);
    builder.build()
}

fn payload(generation: u64) -> String {
    format!("search schema {SCHEMA_VERSION} generation {generation}")
}

#[derive(Clone, Copy)]
struct Fields {
    index: Field,
    name: Field,
    urn: Field,
}

/// The Tantivy index of a library and the reader that searches it.
pub(crate) struct NameIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
    /// "in /x/index" or "in memory", for error messages.
    location: String,
}

impl NameIndex {
    /// An empty index in RAM.
    pub(crate) fn in_memory() -> Result<NameIndex, Error> {
        NameIndex::new(Index::create_in_ram(schema()), "in memory".into())
    }

    /// Opens the index in `dir` if it reflects catalog `generation` with the
    /// current schema; otherwise replaces it with one built from `files`.
    pub(crate) fn open_in_dir<'a>(
        dir: &Path,
        generation: u64,
        files: impl IntoIterator<Item = &'a SharedFile>,
    ) -> Result<NameIndex, Error> {
        let location = format!("in {}", dir.display());
        let files: Vec<&SharedFile> = files.into_iter().collect();
        let current = Index::open_in_dir(dir).ok().filter(|index| {
            index.schema() == schema()
                && index.load_metas().ok().and_then(|metas| metas.payload) == Some(payload(generation))
                && is_whole(index, files.len())
        });
        if let Some(index) = current {
            return NameIndex::new(index, location);
        }
        if dir.exists() {
            fs::remove_dir_all(dir).map_err(Error::io("remove the outdated index", dir))?;
        }
        fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
        let index = Index::create_in_dir(dir, schema()).map_err(|source| Error::Index {
            action: "create",
            location: location.clone(),
            source,
        })?;
        let index = NameIndex::new(index, location)?;
        index.rebuild(files, generation)?;
        Ok(index)
    }

    fn new(index: Index, location: String) -> Result<NameIndex, Error> {
        index.tokenizers().register(NAME_TOKENIZER, analyzer());
        let schema = index.schema();
        let field = |name| {
            schema.get_field(name).map_err(|source| Error::Index { action: "open", location: location.clone(), source })
        };
        let fields = Fields { index: field(INDEX_FIELD)?, name: field("name")?, urn: field("urn")? };
        // Results come from the catalog, so the document store is never read: no cache for it.
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .doc_store_cache_num_blocks(0)
            .try_into()
            .map_err(|source| Error::Index { action: "open a reader for", location: location.clone(), source })?;
        Ok(NameIndex { index, reader, fields, location })
    }

    fn error(&self, action: &'static str) -> impl FnOnce(TantivyError) -> Error + '_ {
        move |source| Error::Index { action, location: self.location.clone(), source }
    }

    /// Starts a batch of changes. The writer lives only as long as the batch:
    /// a thousand idle libraries in one process must not hold a thousand
    /// writers, each with its threads and memory arena.
    pub(crate) fn update(&self) -> Result<IndexUpdate<'_>, Error> {
        // One indexing thread and one merge thread, with Tantivy's smallest
        // memory budget (the default): shared folders are small next to
        // what Tantivy is built for.
        let options = IndexWriterOptions::builder().num_worker_threads(1).num_merge_threads(1).build();
        let writer = self.index.writer_with_options(options).map_err(self.error("open a writer for"))?;
        Ok(IndexUpdate { index: self, writer })
    }

    /// Replaces every document with those of `files`.
    pub(crate) fn rebuild<'a>(
        &self,
        files: impl IntoIterator<Item = &'a SharedFile>,
        generation: u64,
    ) -> Result<(), Error> {
        let mut update = self.update()?;
        update.writer.delete_all_documents().map_err(self.error("clear"))?;
        for file in files {
            update.add(file)?;
        }
        update.commit(generation)?;
        update.finish()
    }

    /// The index numbers of the best matches with their scores, best first.
    pub(crate) fn search(&self, query: &Query) -> Result<Vec<(f32, u32)>, Error> {
        let limit = query.limit.min(MAX_RESULTS);
        let Some(tantivy_query) = self.to_tantivy(query).filter(|_| limit > 0) else {
            return Ok(Vec::new());
        };
        let searcher = self.reader.searcher();
        let top = searcher
            .search(&tantivy_query, &TopDocs::with_limit(limit).order_by_score())
            .map_err(self.error("search"))?;
        // Columns are opened only for segments with hits: most queries hit one or two.
        let mut columns: Vec<Option<Column<u64>>> = vec![None; searcher.segment_readers().len()];
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let Some(slot) = columns.get_mut(address.segment_ord as usize) else { continue };
            let column = match slot {
                Some(column) => column,
                None => slot.insert(
                    searcher
                        .segment_reader(address.segment_ord)
                        .fast_fields()
                        .u64(INDEX_FIELD)
                        .map_err(self.error("read file numbers from"))?,
                ),
            };
            if let Some(number) = column.first(address.doc_id).and_then(|number| u32::try_from(number).ok()) {
                hits.push((score, number));
            }
        }
        Ok(hits)
    }

    /// The operation number of the last commit.
    #[cfg(test)]
    pub(crate) fn opstamp(&self) -> u64 {
        self.index.load_metas().map(|metas| metas.opstamp).unwrap_or_default()
    }

    /// Any of the URNs if there are some, else all of the words; `None` when
    /// that leaves nothing to look for.
    fn to_tantivy(&self, query: &Query) -> Option<Box<dyn TantivyQuery>> {
        let term_query = |field, text: &str, option| -> Box<dyn TantivyQuery> {
            Box::new(TermQuery::new(Term::from_field_text(field, text), option))
        };
        if !query.urns.is_empty() {
            let urns = query.urns.iter().take(MAX_QUERY_URNS);
            let clauses =
                urns.map(|urn| term_query(self.fields.urn, &urn.to_string(), IndexRecordOption::Basic)).collect();
            return Some(Box::new(BooleanQuery::union(clauses)));
        }
        let mut words: Vec<String> = Vec::new();
        for word in keywords(&query.words) {
            if words.len() == MAX_QUERY_WORDS {
                break;
            }
            if !words.contains(&word) {
                words.push(word);
            }
        }
        if words.is_empty() {
            return None;
        }
        let clauses =
            words.iter().map(|word| term_query(self.fields.name, word, IndexRecordOption::WithFreqs)).collect();
        Some(Box::new(BooleanQuery::intersection(clauses)))
    }
}

/// A batch of changes to the index, with the writer that makes them.
pub(crate) struct IndexUpdate<'a> {
    index: &'a NameIndex,
    writer: IndexWriter,
}

impl IndexUpdate<'_> {
    /// Adds a document for `file`.
    pub(crate) fn add(&mut self, file: &SharedFile) -> Result<(), Error> {
        let fields = self.index.fields;
        let mut document = TantivyDocument::default();
        document.add_u64(fields.index, u64::from(file.index));
        document.add_text(fields.name, &file.name);
        if let Some(text) = file.signature.as_ref().and_then(|s| s.search_text()) {
            document.add_text(fields.name, text);
        }
        document.add_text(fields.urn, file.sha1.to_string());
        document.add_text(fields.urn, file.sha256.to_string());
        self.writer.add_document(document).map(drop).map_err(self.index.error("add a document to"))
    }

    /// Deletes the document of file number `index`.
    pub(crate) fn remove(&mut self, index: u32) {
        self.writer.delete_term(Term::from_field_u64(self.index.fields.index, u64::from(index)));
    }

    /// Makes the changes so far durable and visible to searches, marked as
    /// reflecting catalog `generation`.
    pub(crate) fn commit(&mut self, generation: u64) -> Result<(), Error> {
        let mut prepared = self.writer.prepare_commit().map_err(self.index.error("commit"))?;
        prepared.set_payload(&payload(generation));
        prepared.commit().map_err(self.index.error("commit"))?;
        self.index.reader.reload().map_err(self.index.error("reload"))
    }

    /// Lets merges finish, then drops the writer with its threads and memory.
    pub(crate) fn finish(self) -> Result<(), Error> {
        let index = self.index;
        self.writer.wait_merging_threads().map_err(index.error("merge segments of"))?;
        index.reader.reload().map_err(index.error("reload"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_split_on_punctuation_and_fold_case_and_accents() {
        assert_eq!(keywords("SEBLINUX-base-1.0.tar"), ["seblinux", "base", "1", "0", "tar"]);
        assert_eq!(keywords("Été à Noël (live).MP3"), ["ete", "a", "noel", "live", "mp3"]);
        assert_eq!(keywords("naïve_CAFÉ"), ["naive", "cafe"]);
    }

    #[test]
    fn keywords_of_punctuation_alone_are_empty() {
        assert!(keywords("\\").is_empty());
        assert!(keywords("").is_empty());
        assert!(keywords(" -_.()[] ").is_empty());
    }
}
