/** Every GraphQL document the dashboard sends (one place to see what it asks of the API). */

const ARTIFACT = "kind sha256 downloadUrl sizeBytes step module { index }";

export const RUNS_QUERY = `query DashboardRuns($state: RunState) {
  runs(first: 50, state: $state) {
    totalCount
    nodes {
      id kind state accuracy createdAt startedAt finishedAt
      architecture { name } dataset { name }
      modules { step totalSteps }
      stages { kind state }
    }
  }
}`;

export const RUN_QUERY = `query DashboardRun($id: ID!) {
  run(id: $id) {
    id kind state recipe seed decentralized error accuracy createdAt startedAt finishedAt
    architecture {
      id name numModules
      runs(first: 20, state: SUCCEEDED) { nodes { id kind accuracy dataset { id } } }
    }
    dataset { id name }
    metaModel { id name checkpoint { ${ARTIFACT} } }
    jobs { id stage state attempts workerId startedAt finishedAt module { index } }
    modules {
      id index blockStart blockEnd state step totalSteps loss shard attempts
      progress { step totalSteps loss imagesPerSecond etaSeconds seq }
      jobs { workerId state }
    }
    artifacts { ${ARTIFACT} }
    finalModel { ${ARTIFACT} }
    accuracyCurve { stage moduleIndex step criticalPathSeconds computeSeconds accuracy }
    splitPlan { split predictedSeconds evenSplit evenPredictedSeconds measuredSeconds }
  }
}`;

export const MODULE_LINEAGE_QUERY = `query DashboardLineage($id: ID!) {
  node(id: $id) {
    ... on Module {
      index
      lineage {
        metaModel { name checkpoint { ${ARTIFACT} } }
        shard
        checkpoints { ${ARTIFACT} }
        assembledInto { ${ARTIFACT} }
      }
    }
  }
}`;

/** Fields of every event type; `state` is aliased per type (their types differ). */
export const RUN_EVENT_FIELDS = `seq type moduleIndex createdAt
  ... on RunStateChanged { runState: state error finalAccuracy }
  ... on JobStateChanged { jobState: state stage attempt workerId }
  ... on ModuleStateChanged { moduleState: state }
  ... on JobStarted { stage totalSteps }
  ... on TrainingProgress { stage step totalSteps loss lr imagesPerSecond etaSeconds }
  ... on EvaluationResult { stage accuracy }
  ... on LogMessage { level message }`;

export const RUN_EVENTS_SUBSCRIPTION = `subscription DashboardRunEvents($runId: ID!, $afterSeq: Int!) {
  runEvents(runId: $runId, afterSeq: $afterSeq) { ${RUN_EVENT_FIELDS} }
}`;

export const START_FORM_QUERY = `query DashboardStartForm {
  architectures(first: 100) { nodes { id name numModules } }
  datasets(first: 100) { nodes { id name } }
  metaModels(first: 100) { nodes { id name numModules } }
  runs(first: 100, state: SUCCEEDED) { nodes { id kind createdAt architecture { name } } }
}`;

const USER_ERRORS = "userErrors { field message code }";

export const START_RUN_MUTATION = `mutation DashboardStartRun($input: StartRunInput!) {
  startRun(input: $input) { run { id } ${USER_ERRORS} }
}`;

export const CANCEL_RUN_MUTATION = `mutation DashboardCancelRun($input: CancelRunInput!) {
  cancelRun(input: $input) { run { id state } ${USER_ERRORS} }
}`;

export const RETRY_MODULE_MUTATION = `mutation DashboardRetryModule($input: RetryModuleInput!) {
  retryModule(input: $input) { module { id state } ${USER_ERRORS} }
}`;

export const WHO_AM_I_QUERY = `query DashboardWhoAmI { currentApiToken { name role } }`;
