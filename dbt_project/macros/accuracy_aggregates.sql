{#
    The accuracy figures of a group of responses of int_evaluation_votes (docs block
    accuracy), for the select list of a query grouped by the accuracy marts' grain.
#}
{% macro accuracy_aggregates() -%}
    max(evaluation_id) as evaluation_id,
    count(*) as count_responses,
    cast(sum(case when majority_vote is not null then 1 else 0 end) as bigint) as count_judged_responses,
    cast(sum(case when majority_vote = 'correct' then 1 else 0 end) as bigint) as count_correct_responses,
    cast(sum(case when majority_vote = 'incorrect' then 1 else 0 end) as bigint) as count_incorrect_responses,
    cast(sum(case when majority_vote = 'needs_review' then 1 else 0 end) as bigint) as count_needs_review_responses,
    cast(sum(case when is_majority_tie then 1 else 0 end) as bigint) as count_tied_responses,
    cast(sum(case when majority_vote is null then 1 else 0 end) as bigint) as count_unjudged_responses,
    cast(sum(case when is_unanimous then 1 else 0 end) as bigint) as count_unanimous_responses,
    cast(sum(case when majority_vote = 'correct' then 1 else 0 end) as double)
    / nullif(sum(case when majority_vote in ('correct', 'incorrect') then 1 else 0 end), 0) as accuracy,
    cast(sum(case when majority_vote = 'correct' then 1 else 0 end) as double)
    / nullif(sum(case when majority_vote is not null then 1 else 0 end), 0) as accuracy_needs_review_as_incorrect,
    {{ stable_avg('cosine_similarity') }} as cosine_similarity_mean,
    {{ stable_avg('token_f1') }} as token_f1_mean,
    {{ stable_avg('levenshtein_ratio') }} as levenshtein_ratio_mean,
    {{ stable_avg('token_set_ratio') }} as token_set_ratio_mean,
    {{ stable_avg('case when is_exact_match then 1e0 when not is_exact_match then 0e0 end') }} as exact_match_rate,
    cast(max(count_judges) as bigint) as count_judges,
    cast(sum(count_judge_calls) as bigint) as count_judge_calls,
    cast(sum(count_judges_failed) as bigint) as count_failed_judge_calls
{%- endmacro %}
